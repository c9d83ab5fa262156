"""Data faults in ImageData list files (the list-format errors themselves are in
tests/test_list_files.py): empty, corrupt or missing images, labels that are not numbers,
names that look like shell commands. Each either stops with the list file and line or,
with skip_bad, is skipped and counted; paired lists never fall out of step."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf import text_format

from caffe2torch.data import DataFeeder
from caffe2torch.errors import DataError
from caffe2torch.proto import caffe_pb2


def image_layer(name: str, source: str, batch: int, extra: str = ""
                ) -> caffe_pb2.LayerParameter:
    return text_format.Parse(
        f'name: "{name}" type: "ImageData" top: "{name}" top: "{name}_label" '
        f'image_data_param {{ source: "{source}" batch_size: {batch} {extra} }}',
        caffe_pb2.LayerParameter())


def write_pairs(folder: Path, n: int, name: str, offset: int) -> list[str]:
    """``n`` 4x4 images whose pixels equal row + offset; list lines 'file row'."""
    lines = []
    for i in range(n):
        cv2.imwrite(str(folder / f"{name}_{i}.png"), np.full((4, 4, 3), i + offset, np.uint8))
        lines.append(f"{name}_{i}.png {i}")
    (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return lines


@pytest.mark.parametrize("damage", ["zero_bytes", "garbage", "truncated_png", "directory",
                                    "missing"])
def test_bad_image_names_list_and_line(tmp_path: Path, damage: str) -> None:
    write_pairs(tmp_path, 4, "train1", 0)
    victim = tmp_path / "train1_2.png"
    if damage == "zero_bytes":
        victim.write_bytes(b"")
    elif damage == "garbage":
        victim.write_bytes(os.urandom(300))
    elif damage == "truncated_png":
        victim.write_bytes(victim.read_bytes()[:30])
    elif damage == "directory":
        victim.unlink()
        victim.mkdir()
    else:
        victim.unlink()
    layers = [image_layer("data", "train1.txt", 4)]
    with pytest.raises(DataError, match=r"could not read image 'train1_2\.png'") as info:
        DataFeeder(layers, "TEST", cwd=tmp_path).next_batch()
    assert (info.value.path, info.value.line) == ("train1.txt", 3)
    assert str(info.value).startswith("train1.txt:3: ")
    feeder = DataFeeder(layers, "TEST", cwd=tmp_path, skip_bad=True)
    with pytest.warns(UserWarning, match="train1.txt:3"):
        batch = feeder.next_batch()
    assert batch["data_label"].tolist() == [0, 1, 3, 0]
    assert feeder.skipped == 1 and feeder.skipped_rows[0].startswith("train1.txt:3: ")


@pytest.mark.parametrize("shuffle", [False, True])
def test_skip_in_train1_drops_the_same_row_of_train2(tmp_path: Path, shuffle: bool) -> None:
    write_pairs(tmp_path, 8, "train1", 0)
    write_pairs(tmp_path, 8, "train2", 100)
    (tmp_path / "train1_5.png").write_bytes(b"not a png")
    extra = "shuffle: true" if shuffle else ""
    layers = [image_layer("data", "train1.txt", 4, extra),
              image_layer("data_p", "train2.txt", 4, extra)]
    feeder = DataFeeder(layers, "TRAIN", cwd=tmp_path, seed=11, skip_bad=True)
    seen = []
    with pytest.warns(UserWarning, match="train1.txt:6"):
        for _ in range(4):
            b = feeder.next_batch()
            # row i of train1 (pixels i) always meets row i of train2 (pixels 100 + i)
            assert b["data_label"].tolist() == b["data_p_label"].tolist()
            assert (b["data"][:, 0, 0, 0] + 100).tolist() == b["data_p"][:, 0, 0, 0].tolist()
            seen += b["data_label"].int().tolist()
    assert 5 not in seen and feeder.skipped >= 1
    assert feeder.last_indices["data"] == feeder.last_indices["data_p"]


def test_every_row_bad_stops_instead_of_spinning(tmp_path: Path) -> None:
    (tmp_path / "l.txt").write_text("a.png 0\nb.png 1\n")
    feeder = DataFeeder([image_layer("d", "l.txt", 2)], "TEST", cwd=tmp_path, skip_bad=True)
    with pytest.raises(DataError, match="every row of the data failed"), \
            pytest.warns(UserWarning):
        feeder.next_batch()


@pytest.mark.parametrize(("line", "col"), [("a.png cat", 7), ("a.png 1\nb.png one", 7),
                                           ("a.png 1\nb.png 2\nc.png -", 7)])
def test_label_that_is_not_a_number(tmp_path: Path, line: str, col: int) -> None:
    (tmp_path / "l.txt").write_text(line + "\n")
    with pytest.raises(DataError, match="not a label") as info:
        DataFeeder([image_layer("d", "l.txt", 1)], "TEST", cwd=tmp_path)
    assert info.value.path == "l.txt"
    assert info.value.line == line.count("\n") + 1 and info.value.col == col


SHELL_NAMES = ["|rm -rf victim", "$(touch marker_a)", "`touch marker_b`", "; touch marker_c",
               "victim && touch marker_d", "../../../../etc/passwd\x00x"]


def test_list_paths_are_only_paths(tmp_path: Path) -> None:
    """Names that a shell would run are looked up as (missing) files, nothing more."""
    (tmp_path / "victim").mkdir()
    lines = [f"{name} {k}" for k, name in enumerate(SHELL_NAMES)]
    (tmp_path / "l.txt").write_text("\n".join(lines) + "\n")
    feeder = DataFeeder([image_layer("d", "l.txt", 1)], "TEST", cwd=tmp_path, skip_bad=True)
    for k, name in enumerate(SHELL_NAMES[:-1]):
        with pytest.raises(DataError) as info:
            DataFeeder([image_layer("d", "l.txt", 1)], "TEST",
                       cwd=tmp_path).sources[0].load(k)
        assert name in info.value.message and info.value.line == k + 1
    with pytest.raises(DataError, match="every row"), pytest.warns(UserWarning):
        feeder.next_batch()
    assert (tmp_path / "victim").is_dir()
    assert not any(tmp_path.glob("marker_*")) and not any(Path.cwd().glob("marker_*"))


def test_a_file_really_named_like_a_command_is_read(tmp_path: Path) -> None:
    name = "$(touch marker) x.png"
    cv2.imwrite(str(tmp_path / "img.png"), np.full((2, 2, 3), 7, np.uint8))
    os.rename(tmp_path / "img.png", tmp_path / name)
    (tmp_path / "l.txt").write_text(f"{name} 3\n")
    b = DataFeeder([image_layer("d", "l.txt", 1)], "TEST", cwd=tmp_path).next_batch()
    assert b["d_label"].tolist() == [3] and float(b["d"][0, 0, 0, 0]) == 7
    assert not (tmp_path / "marker").exists()
