"""Decoding a damaged image: OpenCV's own '[ WARN ... ]' lines stay off stderr (our
message names the file and says what to do), and OpenCV's log level is restored after."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from caffe2torch.data.images import decode_image, opencv_quiet, read_image, why_unreadable


@pytest.fixture
def truncated_png(tmp_path: Path) -> Path:
    ok, buf = cv2.imencode(".png", np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
    assert ok
    path = tmp_path / "broken.png"
    path.write_bytes(buf.tobytes()[: len(buf) // 2])
    return path


@pytest.fixture
def damaged_png(tmp_path: Path) -> Path:
    """A PNG signature followed by no valid chunk."""
    path = tmp_path / "damaged.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 24)
    return path


def test_decoding_a_truncated_png_prints_nothing(truncated_png: Path, capfd) -> None:
    data = truncated_png.read_bytes()
    capfd.readouterr()
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None
    assert "[ WARN" in capfd.readouterr().err  # plain OpenCV: the premise
    level = cv2.utils.logging.getLogLevel()
    assert decode_image(data, force_color=True) is None
    assert decode_image(data) is None
    assert read_image(str(truncated_png), 8, 8) is None
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert cv2.utils.logging.getLogLevel() == level


def test_reading_a_damaged_png_prints_only_our_message(damaged_png: Path, capfd) -> None:
    capfd.readouterr()
    assert cv2.imread(str(damaged_png), cv2.IMREAD_COLOR) is None
    assert "grfmt_png" in capfd.readouterr().err  # plain OpenCV: the premise
    assert read_image(str(damaged_png), 8, 8) is None
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    message, hint = why_unreadable("damaged.png", str(damaged_png))
    assert "OpenCV cannot decode it" in message and "replace the file" in hint


def test_opencv_quiet_nests_and_restores() -> None:
    level = cv2.utils.logging.getLogLevel()
    with opencv_quiet():
        with opencv_quiet():
            assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
        assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
    assert cv2.utils.logging.getLogLevel() == level
    with pytest.raises(ValueError), opencv_quiet():
        raise ValueError
    assert cv2.utils.logging.getLogLevel() == level


def test_a_good_image_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    cv2.imwrite(str(path), np.full((4, 6, 3), 7, np.uint8))
    img = read_image(str(path), 2, 3)
    assert img is not None and img.shape == (2, 3, 3) and int(img[0, 0, 0]) == 7
