"""SSD's AnnotatedData (weiliu89/caffe): the non-augmenting path over a small LMDB of
AnnotatedDatum records (encoded and raw images), against OpenCV + NumPy: WARP resize, mean,
scale, and the (1, 1, K, 8) label rows with clipping; the settings not reproduced are
refused; build-time shapes. The augmenting path: test_ssd_augment.py."""

from __future__ import annotations

import cv2
import lmdb
import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError, DataError
from caffe2torch.layers.forks.ssd_data import AnnotatedDataReader
from caffe2torch.proto import caffe_pb2
from tests.layers.helpers_core import build, layer_param, top_shapes

BOXES = [
    [(1, 0, (0.1, 0.2, 0.5, 0.6), False), (3, 2, (0.4, -0.2, 1.3, 0.9), True)],
    [],
    [(2, 1, (1.2, 0.1, 1.5, 0.4), False)],  # entirely outside: dropped
]


def make_lmdb(path, images) -> None:
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k, (img, boxes) in enumerate(zip(images, BOXES)):
            anno = caffe_pb2.AnnotatedDatum(type=caffe_pb2.AnnotatedDatum.BBOX)
            if k == 1:  # a raw (not encoded) datum: C x H x W bytes
                anno.datum.channels, anno.datum.height, anno.datum.width = 3, *img.shape[:2]
                anno.datum.data = img.transpose(2, 0, 1).tobytes()
            else:
                anno.datum.encoded = True
                anno.datum.data = cv2.imencode(".png", img)[1].tobytes()
            groups: dict[int, caffe_pb2.AnnotationGroup] = {}
            for label, instance, (x0, y0, x1, y1), difficult in boxes:
                group = groups.setdefault(label, anno.annotation_group.add(group_label=label))
                a = group.annotation.add(instance_id=instance)
                a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax = x0, y0, x1, y1
                a.bbox.difficult = difficult
            txn.put(f"{k:08d}".encode(), anno.SerializeToString())
    env.close()


def layer_text(source: str, batch: int = 2, extra: str = "") -> str:
    return f"""name: "data" type: "AnnotatedData" top: "data" top: "label"
        transform_param {{ scale: 0.007843 mean_value: 127.5 mean_value: 127.5
          mean_value: 127.5 resize_param {{ prob: 1 resize_mode: WARP height: 12 width: 10
          interp_mode: LINEAR }} {extra} }}
        data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }}
        annotated_data_param {{ batch_sampler {{ }} }}"""


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in
            ((20, 16), (9, 7), (12, 10))]


def stored_as_jpeg(img: np.ndarray) -> np.ndarray:
    """The fork's CropImage to the whole image (a batch_sampler that keeps it): the crop
    is stored as JPEG and decoded again."""
    return cv2.imdecode(cv2.imencode(".jpg", img)[1], cv2.IMREAD_UNCHANGED)


def expected_image(img: np.ndarray) -> np.ndarray:
    resized = cv2.resize(img, (10, 12), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    return ((resized - np.float32(127.5)) * np.float32(0.007843)).transpose(2, 0, 1)


def test_reader_matches_the_fork(tmp_path, images) -> None:
    make_lmdb(tmp_path / "lmdb", images)
    reader = AnnotatedDataReader(layer_param(layer_text("lmdb")), "TEST", tmp_path)
    first = reader.next_batch()
    assert first["data"].shape == (2, 3, 12, 10)
    # record 0 is a PNG, re-stored as JPEG by the whole-image crop; record 1 is raw pixels,
    # which the crop copies as they are
    for k, img in enumerate((stored_as_jpeg(images[0]), images[1])):
        np.testing.assert_allclose(first["data"][k].numpy(), expected_image(img),
                                   rtol=1e-6, atol=1e-6)
    assert not np.array_equal(stored_as_jpeg(images[0]), images[0])
    # item 0's two boxes (the second clipped to [0, 1]); item 1 has none
    want = np.array([[0, 1, 0, 0.1, 0.2, 0.5, 0.6, 0],
                     [0, 3, 2, 0.4, 0.0, 1.0, 0.9, 1]], dtype=np.float32)
    np.testing.assert_allclose(first["label"].numpy().reshape(-1, 8), want, rtol=1e-6)
    assert first["label"].shape == (1, 1, 2, 8)
    # the next batch: record 2 (its only box is outside: dropped) then record 0 again
    second = reader.next_batch()
    np.testing.assert_allclose(second["data"][0].numpy(),
                               expected_image(stored_as_jpeg(images[2])), rtol=1e-6, atol=1e-6)
    label = second["label"].numpy().reshape(-1, 8)
    assert label.shape == (2, 8) and (label[:, 0] == 1).all()
    reader.close()


@pytest.mark.parametrize("sampler", ["", "batch_sampler { max_sample: 0 }",
                                     "batch_sampler { max_trials: 0 }"],
                         ids=["none", "max_sample-0", "max_trials-0"])
def test_without_a_whole_image_crop_the_record_pixels_are_kept(tmp_path, images,
                                                               sampler: str) -> None:
    make_lmdb(tmp_path / "lmdb", images)
    text = layer_text("lmdb").replace("batch_sampler {{ }}".format(), sampler)
    reader = AnnotatedDataReader(layer_param(text), "TEST", tmp_path)
    np.testing.assert_allclose(reader.next_batch()["data"][0].numpy(),
                               expected_image(images[0]), rtol=1e-6, atol=1e-6)
    reader.close()


def test_no_box_gives_a_row_of_minus_one(tmp_path, images) -> None:
    make_lmdb(tmp_path / "lmdb", images)
    reader = AnnotatedDataReader(layer_param(layer_text("lmdb", batch=1)), "TEST", tmp_path)
    reader.next_batch()
    label = reader.next_batch()["label"]  # record 1 has no box
    torch.testing.assert_close(label, torch.full((1, 1, 1, 8), -1.0))


@pytest.mark.parametrize("extra", ["crop_size: 8", "noise_param { prob: 0.5 }"],
                         ids=["crop", "noise"])
def test_unreproduced_settings_are_refused(tmp_path, images, extra: str) -> None:
    make_lmdb(tmp_path / "lmdb", images)
    with pytest.raises(DataError, match=r"not reproduced \(transform_param"):
        AnnotatedDataReader(layer_param(layer_text("lmdb", extra=extra)), "TRAIN", tmp_path)


def test_other_resize_modes_are_refused(tmp_path, images) -> None:
    make_lmdb(tmp_path / "lmdb", images)
    text = layer_text("lmdb").replace("resize_mode: WARP", "resize_mode: FIT_SMALL_SIZE")
    with pytest.raises(DataError, match="resize_mode"):
        AnnotatedDataReader(layer_param(text), "TRAIN", tmp_path)


def test_build_shapes() -> None:
    with pytest.raises(BuildError, match="channels from the records") as info:
        top_shapes(build(layer_text("x")), [])
    # the image top is named (the label's setup shape is known), not "?"
    assert info.value.message.endswith("top(s) still without a shape: data")
    assert "--input-shape data=N,C,H,W" in (info.value.hint or "")
    assert "label=" not in (info.value.hint or "")
    m = build(layer_text("x"), options={"input_shapes": {"data": (2, 3, 12, 10)}})
    assert m.infer_shapes([]) == [(2, 3, 12, 10), (1, 1, 1, 8)]
