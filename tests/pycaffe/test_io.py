"""caffe.io: the Transformer and its setters, images, and the protobuf converters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import caffe2torch.pycaffe as caffe
from caffe2torch.pycaffe import io as cio

SHAPE = (1, 3, 8, 10)


@pytest.fixture
def transformer() -> cio.Transformer:
    t = cio.Transformer({"data": SHAPE})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255.0)
    t.set_mean("data", np.array([104.0, 117.0, 123.0]))
    t.set_input_scale("data", 0.5)
    return t


def test_preprocess_is_caffes_order(transformer: cio.Transformer) -> None:
    image = np.random.default_rng(0).random((8, 10, 3)).astype(np.float32)
    got = transformer.preprocess("data", image)
    mean = np.array([104.0, 117.0, 123.0])[:, None, None]
    want = ((image.transpose(2, 0, 1)[::-1] * 255.0) - mean) * 0.5
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert got.dtype == np.float32 and got.shape == (3, 8, 10)
    np.testing.assert_allclose(transformer.deprocess("data", got), image, atol=1e-5)


def test_preprocess_resizes_to_the_input(transformer: cio.Transformer) -> None:
    image = np.ones((16, 20, 3), np.float32) * 0.5
    assert transformer.preprocess("data", image).shape == (3, 8, 10)


def test_mean_image_is_resized_to_the_input() -> None:
    t = cio.Transformer({"data": SHAPE})
    t.set_mean("data", np.full((3, 4, 5), 7.0))
    assert t.mean["data"].shape == (3, 8, 10)
    np.testing.assert_allclose(t.mean["data"], 7.0)


@pytest.mark.parametrize("call,match", [
    (lambda t: t.set_transpose("data", (1, 0)), "Transpose order"),
    (lambda t: t.set_channel_swap("data", (1, 0)), "Channel swap"),
    (lambda t: t.set_mean("data", np.zeros(4)), "Mean channels"),
    (lambda t: t.set_mean("data", np.zeros((1, 1, 2, 2))), "Mean shape invalid"),
], ids=["transpose", "channel_swap", "mean_channels", "mean_rank"])
def test_setters_check_their_input(call: object, match: str) -> None:
    t = cio.Transformer({"data": SHAPE})
    with pytest.raises(ValueError, match=match):
        call(t)  # type: ignore[operator]


def test_unknown_input_is_refused() -> None:
    t = cio.Transformer({"data": SHAPE})
    with pytest.raises(Exception, match="not one of the net inputs"):
        t.set_raw_scale("image", 255)


@pytest.mark.parametrize("kind", ["color", "gray", "rgba", "gray16"])
def test_load_image(tmp_path: Path, kind: str) -> None:
    import cv2

    rng = np.random.default_rng(1)
    if kind == "color":
        bgr = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
        want = bgr[:, :, ::-1] / 255.0
    elif kind == "gray":
        bgr = rng.integers(0, 256, (6, 7), dtype=np.uint8)
        want = np.repeat((bgr / 255.0)[:, :, None], 3, axis=2)
    elif kind == "rgba":
        bgr = rng.integers(0, 256, (6, 7, 4), dtype=np.uint8)
        want = bgr[:, :, 2::-1] / 255.0
    else:
        bgr = rng.integers(0, 65536, (6, 7), dtype=np.uint16)
        want = np.repeat((bgr / 65535.0)[:, :, None], 3, axis=2)
    path = tmp_path / "im.png"
    cv2.imwrite(str(path), bgr)
    got = cio.load_image(str(path))
    assert got.shape == (6, 7, 3)
    np.testing.assert_allclose(got, want, atol=1e-6)
    if kind == "gray":
        assert cio.load_image(str(path), color=False).shape == (6, 7, 1)


def test_load_image_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot read"):
        cio.load_image(str(tmp_path / "none.jpg"))


def test_resize_and_oversample() -> None:
    im = np.random.default_rng(2).random((10, 12, 3)).astype(np.float32)
    assert cio.resize_image(im, (5, 6)).shape == (5, 6, 3)
    assert cio.resize_image(im, (5, 6), interp_order=0).shape == (5, 6, 3)
    assert cio.resize_image(im[:, :, :1], (5, 6)).shape == (5, 6, 1)
    crops = cio.oversample([im, im], (4, 5))
    assert crops.shape == (20, 4, 5, 3)
    np.testing.assert_array_equal(crops[0], im[:4, :5])
    np.testing.assert_array_equal(crops[3], im[6:, 7:])
    np.testing.assert_array_equal(crops[4], im[3:7, 3:8])
    np.testing.assert_array_equal(crops[5], im[:4, :5][:, ::-1])


def test_blobproto_roundtrips() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    d = -a
    blob = cio.array_to_blobproto(a, d)
    np.testing.assert_array_equal(cio.blobproto_to_array(blob), a)
    np.testing.assert_array_equal(cio.blobproto_to_array(blob, return_diff=True), d)
    arrays = [a, np.ones((5,), np.float32)]
    back = cio.blobprotovector_str_to_arraylist(cio.arraylist_to_blobprotovector_str(arrays))
    assert [x.shape for x in back] == [(2, 3, 4), (5,)]
    legacy = caffe.proto.caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3,
                                            data=list(range(6)))
    assert cio.blobproto_to_array(legacy).shape == (1, 2, 1, 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["uint8", "float"])
def test_datum_roundtrip(dtype: type) -> None:
    a = (np.arange(24) % 250).astype(dtype).reshape(2, 3, 4)
    datum = cio.array_to_datum(a, label=3)
    assert datum.label == 3 and (len(datum.data) > 0) == (dtype is np.uint8)
    back = cio.datum_to_array(datum)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, a)
    with pytest.raises(ValueError, match="3-D"):
        cio.array_to_datum(np.zeros((2, 2)))


def test_resize_many_channels_and_orders() -> None:
    im = np.random.default_rng(3).random((10, 12, 600)).astype(np.float32)
    out = cio.resize_image(im, (5, 6))
    assert out.shape == (5, 6, 600)
    np.testing.assert_allclose(out[:, :, 550], cio.resize_image(im[:, :, 550:551], (5, 6))[
        :, :, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="interp_order"):
        cio.resize_image(im, (5, 6), interp_order=2)
