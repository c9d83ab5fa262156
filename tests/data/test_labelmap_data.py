"""HED's ImageLabelmapData rows (caffe2torch.data.labelmap_source): the image through
BVLC's transform with a crop drawn in every phase, the edge map as map / 255 rounded
(>= 128 -> 1), cropped and mirrored with the image; batches sized by their first image;
what a bad list or file gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffe2torch.data.labelmap_source import edge_labels
from caffe2torch.errors import DataError
from tests.support.seg_data import code, coded_image, feeder, write_pair

MEANS = (104.00699, 116.66877, 122.67892)  # HED's train_val.prototxt


def hed_layer(param: str = "", transform: str = "") -> str:
    return ('layer { name: "data" type: "ImageLabelmapData" top: "data" top: "label" '
            f'image_data_param {{ source: "list.txt" {param} }} '
            f"transform_param {{ {transform} }} }}\n")


def edges(h: int, w: int) -> np.ndarray:
    """A map whose (y, x) is 16 * (16 * y + x) mod 256: codes 8 apart straddle 128."""
    return ((16 * code(h, w).astype(np.int64)) % 256).astype(np.uint8)


def test_rounding_of_the_edge_map() -> None:
    gt = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(edge_labels(gt), (gt >= 128).astype(np.uint8))
    assert edge_labels(np.uint8([127, 128]))[0] == 0  # 127 / 255 rounds to 0


def test_exact_tops_with_the_mean(tmp_path: Path) -> None:
    img, gt = coded_image(5, 7), edges(5, 7)
    (tmp_path / "list.txt").write_text(write_pair(tmp_path / "img", "a", img, gt) + "\n")
    means = " ".join(f"mean_value: {m}" for m in MEANS)
    batch = feeder(tmp_path, hed_layer("batch_size: 1", means), phase="TRAIN").next_batch()
    data, label = batch["data"].numpy()[0], batch["label"].numpy()[0]
    assert data.shape == (3, 5, 7) and label.shape == (1, 5, 7)
    for c in range(3):
        np.testing.assert_array_equal(
            data[c], img[:, :, c].astype(np.float32) - np.float32(MEANS[c]))
    np.testing.assert_array_equal(label[0], (gt >= 128).astype(np.float32))


def test_the_crop_is_random_in_test_too_and_shared_with_the_label(tmp_path: Path) -> None:
    img, gt = coded_image(6, 7), edges(6, 7)
    (tmp_path / "list.txt").write_text(write_pair(tmp_path / "img", "a", img, gt) + "\n")
    f = feeder(tmp_path, hed_layer("batch_size: 4", "crop_size: 3 mirror: true"),
               phase="TEST", seed=4)
    offsets, mirrors = set(), set()
    for _ in range(30):
        batch = f.next_batch()
        for data, label in zip(batch["data"].numpy(), batch["label"].numpy()):
            flipped = bool(data[0, 0, 0] > data[0, 0, 2])
            plain = data[0][:, ::-1] if flipped else data[0]
            top, left = divmod(int(plain[0, 0]), 16)
            np.testing.assert_array_equal(plain, code(6, 7)[top:top + 3, left:left + 3])
            want = (gt[top:top + 3, left:left + 3] >= 128).astype(np.float32)
            np.testing.assert_array_equal(label[0], want[:, ::-1] if flipped else want)
            offsets.add((top, left))
            mirrors.add(flipped)
    assert offsets == {(t, x) for t in range(4) for x in range(5)} and mirrors == {True, False}


def test_batches_take_their_first_images_size(tmp_path: Path) -> None:
    lines = [write_pair(tmp_path / "img", "a", coded_image(4, 5), edges(4, 5)),
             write_pair(tmp_path / "img", "b", coded_image(6, 3), edges(6, 3))]
    (tmp_path / "list.txt").write_text("\n\n".join(lines) + "\n\n")  # blank lines skipped
    f = feeder(tmp_path, hed_layer("batch_size: 1"))
    assert [f.next_batch()["data"].shape for _ in range(3)] == [
        (1, 3, 4, 5), (1, 3, 6, 3), (1, 3, 4, 5)]
    f = feeder(tmp_path, hed_layer("batch_size: 2"))
    with pytest.raises(DataError, match=r"differ in size.*list\.txt:3 is 3x6x3"):
        f.next_batch()


def test_resize_applies_to_both(tmp_path: Path) -> None:
    import cv2

    img, gt = coded_image(4, 5), edges(4, 5)
    (tmp_path / "list.txt").write_text(write_pair(tmp_path / "img", "a", img, gt) + "\n")
    batch = feeder(tmp_path, hed_layer("batch_size: 1 new_height: 8 new_width: 3")
                   ).next_batch()
    want = cv2.resize(gt, (3, 8), interpolation=cv2.INTER_LINEAR) >= 128
    np.testing.assert_array_equal(batch["label"].numpy()[0, 0], want.astype(np.float32))
    assert batch["data"].shape == (1, 3, 8, 3)


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("img/a.png img/a_label.png\nimg/a.png\n", 2, "1 name"),
        ("img/a.png img/a_label.png x\n", 1, "3 name"),
    ],
)
def test_a_line_must_pair_two_names(tmp_path: Path, text: str, line: int,
                                    match: str) -> None:
    (tmp_path / "list.txt").write_text(text)
    with pytest.raises(DataError, match=match) as e:
        feeder(tmp_path, hed_layer("batch_size: 1"))
    assert (e.value.path, e.value.line) == ("list.txt", line)


def test_missing_or_mismatched_label_maps(tmp_path: Path) -> None:
    good = write_pair(tmp_path / "img", "a", coded_image(4, 5), edges(4, 5))
    write_pair(tmp_path / "img", "b", coded_image(4, 5), edges(5, 5))
    (tmp_path / "list.txt").write_text(f"{good}\nimg/a.png img/none.png\n"
                                       "img/b.png img/b_label.png\n")
    f = feeder(tmp_path, hed_layer("batch_size: 1"))
    f.next_batch()
    with pytest.raises(DataError, match=r"label map: could not read image 'img/none\.png'"
                       ) as e:
        f.next_batch()
    assert e.value.line == 2
    with pytest.raises(DataError, match=r"label map 'img/b_label\.png' is 5x5 but the "
                       r"image 'img/b\.png' is 4x5") as e:
        f.next_batch()
    assert e.value.line == 3
