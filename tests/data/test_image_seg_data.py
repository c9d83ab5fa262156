"""ImageSegData's rows (DeepLab-v2 / PSPNet; caffe2torch.data.seg_sources and
seg_transform): the exact data, label and data_dim tops; padding with the mean and
ignore_label; the TEST centre crop and the TRAIN crop shared by image and label; mirror of
both; label types; batch order and the seeded shuffle; what a bad list or file gives."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from caffe2torch.errors import DataError
from tests.support.seg_data import code, coded_image, feeder, write_pair

MEANS = (10.0, 20.0, 30.0)


def seg_layer(param: str = "", transform: str = "", tops: int = 3) -> str:
    names = ["data", "label", "data_dim"][:tops]
    top = " ".join(f'top: "{t}"' for t in names)
    return (f'layer {{ name: "d" type: "ImageSegData" {top} '
            f'image_data_param {{ source: "list.txt" label_type: PIXEL {param} }} '
            f"transform_param {{ {transform} }} }}\n")


def one_pair(tmp_path: Path, image: np.ndarray, label: np.ndarray) -> None:
    (tmp_path / "list.txt").write_text(write_pair(tmp_path / "img", "a", image, label) + "\n")


def test_small_image_is_padded_with_the_mean_and_ignore_label(tmp_path: Path) -> None:
    img, lab = coded_image(5, 7), code(5, 7)
    one_pair(tmp_path, img, lab)
    means = " ".join(f"mean_value: {m}" for m in MEANS)
    f = feeder(tmp_path, seg_layer("batch_size: 1 ignore_label: 254",
                                   f"crop_size: 8 scale: 0.5 {means}"))
    batch = f.next_batch()
    data, label, dim = (batch[k].numpy()[0] for k in ("data", "label", "data_dim"))
    assert data.shape == (3, 8, 8) and label.shape == (1, 8, 8) and dim.shape == (1, 1, 2)
    for c in range(3):  # padding at the bottom and right; the TEST centre of 8x8 is (0, 0)
        want = (img[:, :, c].astype(np.float32) - np.float32(MEANS[c])) * np.float32(0.5)
        np.testing.assert_array_equal(data[c, :5, :7], want)
    assert not data[:, 5:, :].any() and not data[:, :, 7:].any()  # mean - mean
    np.testing.assert_array_equal(label[0, :5, :7], lab)
    assert (label[0, 5:, :] == 254).all() and (label[0, :, 7:] == 254).all()
    np.testing.assert_array_equal(dim, [[[5, 7]]])  # the image's size, capped at 8 x 8


def test_padding_one_axis_then_the_test_crop_is_centred(tmp_path: Path) -> None:
    img, lab = coded_image(11, 6), code(11, 6)
    one_pair(tmp_path, img, lab)
    batch = feeder(tmp_path, seg_layer("batch_size: 1", "crop_size: 8 mean_value: 0")
                   ).next_batch()
    label = batch["label"].numpy()[0, 0]
    # padded to 11 x 8, then rows (11 - 8) // 2 = 1 .. 8
    np.testing.assert_array_equal(label[:, :6], lab[1:9])
    assert (label[:, 6:] == 255).all()  # the default ignore_label
    np.testing.assert_array_equal(batch["data"].numpy()[0, 2, :, :6], lab[1:9] + 2.0)
    np.testing.assert_array_equal(batch["data_dim"].numpy()[0], [[[8, 6]]])


def test_rectangular_test_crop_is_the_centre(tmp_path: Path) -> None:
    img, lab = coded_image(9, 12), code(9, 12)
    one_pair(tmp_path, img, lab)
    batch = feeder(tmp_path, seg_layer("batch_size: 1", "crop_height: 4 crop_width: 6")
                   ).next_batch()
    assert batch["data"].shape == (1, 3, 4, 6)
    np.testing.assert_array_equal(batch["label"].numpy()[0, 0], lab[2:6, 3:9])
    np.testing.assert_array_equal(batch["data"].numpy()[0, 1], lab[2:6, 3:9] + 1.0)
    np.testing.assert_array_equal(batch["data_dim"].numpy()[0], [[[4, 6]]])


def test_train_crop_is_random_and_the_same_for_image_and_label(tmp_path: Path) -> None:
    img, lab = coded_image(7, 9), code(7, 9)
    one_pair(tmp_path, img, lab)
    f = feeder(tmp_path, seg_layer("batch_size: 4", "crop_height: 3 crop_width: 5"),
               phase="TRAIN", seed=1)
    offsets = set()
    for _ in range(40):
        batch = f.next_batch()
        for data, label in zip(batch["data"].numpy(), batch["label"].numpy()):
            top, left = divmod(int(label[0, 0, 0]), 16)
            np.testing.assert_array_equal(label[0], lab[top:top + 3, left:left + 5])
            for c in range(3):
                np.testing.assert_array_equal(data[c], img[top:top + 3, left:left + 5, c])
            offsets.add((top, left))
    assert offsets == {(t, x) for t in range(5) for x in range(5)}


def test_mirror_flips_image_and_label_together(tmp_path: Path) -> None:
    img, lab = coded_image(4, 6), code(4, 6)
    one_pair(tmp_path, img, lab)
    f = feeder(tmp_path, seg_layer("batch_size: 8", "mirror: true"), seed=5)
    seen = set()
    for _ in range(2):
        batch = f.next_batch()
        for data, label in zip(batch["data"].numpy(), batch["label"].numpy()):
            flipped = bool(label[0, 0, 0] != 0)
            np.testing.assert_array_equal(label[0], lab[:, ::-1] if flipped else lab)
            np.testing.assert_array_equal(data[0], label[0])  # channel 0 is the code itself
            np.testing.assert_array_equal(data[2], label[0] + 2)
            seen.add(flipped)
    assert seen == {True, False}  # mirrored in TEST too, as the fork's coin


def _class_list(tmp_path: Path, n: int) -> None:
    """n 4 x 4 images, label_type IMAGE: line i's class is i."""
    lines = []
    for i in range(n):
        (tmp_path / "img").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), coded_image(4, 4, i))
        lines.append(f"img/{i}.png {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")


def _classes(f) -> list[int]:
    return [int(v) for v in f.next_batch()["label"].numpy()[:, 0, 0, 0]]


def test_batches_follow_the_list_and_wrap(tmp_path: Path) -> None:
    _class_list(tmp_path, 3)
    f = feeder(tmp_path, seg_layer("batch_size: 2", tops=2).replace("PIXEL", "IMAGE"))
    assert [_classes(f) for _ in range(3)] == [[0, 1], [2, 0], [1, 2]]


def test_shuffle_is_a_new_permutation_each_epoch_fixed_by_the_seed(tmp_path: Path) -> None:
    _class_list(tmp_path, 5)
    layer = seg_layer("batch_size: 5 shuffle: true", tops=2).replace("PIXEL", "IMAGE")
    orders = [[_classes(f) for _ in range(4)]
              for f in (feeder(tmp_path, layer, seed=3), feeder(tmp_path, layer, seed=3))]
    assert orders[0] == orders[1]
    assert all(sorted(epoch) == list(range(5)) for epoch in orders[0])
    assert len({tuple(e) for e in orders[0]}) > 1
    other = [_classes(feeder(tmp_path, layer, seed=s)) for s in range(4, 9)]
    assert any(o != orders[0][0] for o in other)


@pytest.mark.parametrize(("ignore", "want"), [(255, 255), (300, 255), (-1, 0), (7, 7)])
def test_label_type_none_fills_the_saturated_ignore_label(tmp_path: Path, ignore: int,
                                                         want: int) -> None:
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), coded_image(3, 4))
    (tmp_path / "list.txt").write_text("img/a.png\n")
    layer = seg_layer(f"batch_size: 1 ignore_label: {ignore}").replace("PIXEL", "NONE")
    label = feeder(tmp_path, layer).next_batch()["label"].numpy()
    assert label.shape == (1, 1, 3, 4) and (label == want).all()


def test_label_type_image_fills_the_class(tmp_path: Path) -> None:
    _class_list(tmp_path, 1)
    (tmp_path / "list.txt").write_text("img/0.png 300 extra tokens\n")
    label = feeder(tmp_path, seg_layer("batch_size: 1").replace("PIXEL", "IMAGE")
                   ).next_batch()["label"].numpy()
    assert (label == 255).all()  # cv::Scalar(300) in an 8-bit map


def test_resize_applies_to_image_and_label_alike(tmp_path: Path) -> None:
    img, lab = coded_image(5, 7), code(5, 7)
    one_pair(tmp_path, img, lab)
    batch = feeder(tmp_path, seg_layer("batch_size: 1 new_height: 9 new_width: 4")
                   ).next_batch()
    want_img = cv2.resize(img, (4, 9), interpolation=cv2.INTER_LINEAR)
    want_lab = cv2.resize(lab, (4, 9), interpolation=cv2.INTER_LINEAR)  # as the fork: linear
    np.testing.assert_array_equal(batch["data"].numpy()[0, 1], want_img[:, :, 1])
    np.testing.assert_array_equal(batch["label"].numpy()[0, 0], want_lab)
    np.testing.assert_array_equal(batch["data_dim"].numpy()[0], [[[9, 4]]])


def test_scale_factors_resize_image_linearly_and_label_nearest(tmp_path: Path) -> None:
    img, lab = coded_image(3, 4), code(3, 4)
    one_pair(tmp_path, img, lab)
    layer = seg_layer("batch_size: 1", "crop_size: 8 mean_value: 0 scale_factors: 2")
    batch = feeder(tmp_path, layer).next_batch()
    big = cv2.resize(img, (8, 6), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(batch["data"].numpy()[0, 0, :6], big[:, :, 0])
    np.testing.assert_array_equal(batch["label"].numpy()[0, 0, :6],
                                  cv2.resize(lab, (8, 6), interpolation=cv2.INTER_NEAREST))
    assert not batch["data"].numpy()[0, :, 6:].any()  # 6 x 8 padded to the 8 x 8 crop
    np.testing.assert_array_equal(batch["data_dim"].numpy()[0], [[[3, 4]]])


def test_grey_images_without_a_crop_take_the_first_images_size(tmp_path: Path) -> None:
    lines = [write_pair(tmp_path / "img", "a", coded_image(4, 5), code(4, 5)),
             write_pair(tmp_path / "img", "b", coded_image(6, 8), code(6, 8))]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    batch = feeder(tmp_path, seg_layer("batch_size: 2 is_color: false")).next_batch()
    assert batch["data"].shape == (2, 1, 4, 5)
    np.testing.assert_array_equal(batch["label"].numpy()[1, 0], code(6, 8)[:4, :5])
    np.testing.assert_array_equal(batch["data_dim"].numpy()[:, 0, 0], [[4, 5], [4, 5]])


def test_an_image_smaller_than_the_top_is_refused(tmp_path: Path) -> None:
    lines = [write_pair(tmp_path / "img", "a", coded_image(4, 5), code(4, 5)),
             write_pair(tmp_path / "img", "b", coded_image(3, 3), code(3, 3))]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"list\.txt:2: the image is 3x3, smaller than"):
        feeder(tmp_path, seg_layer("batch_size: 2")).next_batch()


def test_padding_without_mean_value_is_refused(tmp_path: Path) -> None:
    one_pair(tmp_path, coded_image(3, 4), code(3, 4))
    with pytest.raises(DataError, match=r"pads it with transform_param\.mean_value"):
        feeder(tmp_path, seg_layer("batch_size: 1", "crop_size: 5")).next_batch()


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        pytest.param("img/a.png img/a_label.png\nimg/a.png\n", 2, "no label on this line",
                     id="no-label"),
        pytest.param("img/a.png img/a_label.png\n\nimg/a.png img/a_label.png\n", 2,
                     "empty line", id="blank-line"),
    ],
)
def test_bad_list_lines_name_file_and_line(tmp_path: Path, text: str, line: int,
                                           match: str) -> None:
    one_pair(tmp_path, coded_image(3, 4), code(3, 4))
    (tmp_path / "list.txt").write_text(text)
    with pytest.raises(DataError, match=match) as e:
        feeder(tmp_path, seg_layer("batch_size: 1"))
    assert (e.value.path, e.value.line) == ("list.txt", line)


def test_image_label_without_digits_is_refused(tmp_path: Path) -> None:
    _class_list(tmp_path, 1)
    (tmp_path / "list.txt").write_text("img/0.png cat\n")
    with pytest.raises(DataError, match="'cat' is not an integer") as e:
        feeder(tmp_path, seg_layer("batch_size: 1").replace("PIXEL", "IMAGE"))
    assert e.value.line == 1


def test_missing_label_file_names_it_and_the_line(tmp_path: Path) -> None:
    one_pair(tmp_path, coded_image(3, 4), code(3, 4))
    (tmp_path / "list.txt").write_text("img/a.png img/a_label.png\nimg/a.png img/gone.png\n")
    f = feeder(tmp_path, seg_layer("batch_size: 2"))
    with pytest.raises(DataError, match=r"label image: could not read image 'img/gone\.png'"
                       ) as e:
        f.next_batch()
    assert (e.value.path, e.value.line) == ("list.txt", 2)


def test_label_size_must_be_the_images(tmp_path: Path) -> None:
    one_pair(tmp_path, coded_image(3, 4), code(4, 4))
    with pytest.raises(DataError, match=r"label image 'img/a_label\.png' is 4x4 but the "
                       r"image 'img/a\.png' is 3x4") as e:
        feeder(tmp_path, seg_layer("batch_size: 1", "crop_size: 2")).next_batch()
    assert e.value.line == 1


def test_unreadable_rows_can_be_skipped(tmp_path: Path) -> None:
    one_pair(tmp_path, coded_image(3, 4), code(3, 4))
    (tmp_path / "list.txt").write_text("img/a.png img/a_label.png\nimg/a.png img/gone.png\n")
    with pytest.warns(UserWarning, match="gone"):
        f = feeder(tmp_path, seg_layer("batch_size: 2"), skip_bad=True)
        assert f.next_batch()["label"].shape == (2, 1, 3, 4)
    assert f.skipped >= 1


@pytest.mark.parametrize(
    ("transform", "match"),
    [
        ("crop_size: 4 crop_height: 3 crop_width: 3", "either specify crop_size or both"),
        ("crop_height: 3", "either specify crop_size or both"),
        ('mean_file: "m.binaryproto"', "does not support mean_file"),
    ],
)
def test_the_forks_transform_checks(tmp_path: Path, transform: str, match: str) -> None:
    one_pair(tmp_path, coded_image(3, 4), code(3, 4))
    with pytest.raises(DataError, match=match):
        feeder(tmp_path, seg_layer("batch_size: 1", transform))


def test_worker_processes_give_the_same_batches(tmp_path: Path) -> None:
    img, lab = coded_image(7, 9), code(7, 9)
    one_pair(tmp_path, img, lab)
    layer = seg_layer("batch_size: 3", "crop_size: 4 mirror: true")
    batches = []
    for workers in (0, 1):
        f = feeder(tmp_path, layer, phase="TRAIN", seed=2, num_workers=workers)
        batches.append([f.next_batch()["label"].numpy().copy() for _ in range(3)])
        f.close()
    for a, b in zip(*batches):
        np.testing.assert_array_equal(a, b)


def test_a_v1_net_names_the_type_image_seg_data(tmp_path: Path) -> None:
    one_pair(tmp_path, coded_image(3, 4), code(3, 4))
    layer = ('layers { name: "d" type: IMAGE_SEG_DATA top: "data" top: "label" '
             'image_data_param { source: "list.txt" label_type: PIXEL batch_size: 1 } }\n')
    batch = feeder(tmp_path, layer).next_batch()
    np.testing.assert_array_equal(batch["label"].numpy()[0, 0], code(3, 4))
