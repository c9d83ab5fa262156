"""caffe.Classifier (resize, ten crops or the centre, Transformer, averaged predictions)
and caffe.Detector (windows with context, warped to the input)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import caffe2torch.pycaffe as caffe

DEPLOY = """name: "tiny"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 4 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def model(tmp_path: Path) -> tuple[str, str]:
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(DEPLOY)
    weights = tmp_path / "w.caffemodel"
    caffe.Net(str(proto), caffe.TEST).save(str(weights))
    return str(proto), str(weights)


def test_classifier_predicts_with_ten_crops(model: tuple[str, str]) -> None:
    mean = np.array([0.1, 0.2, 0.3])
    clf = caffe.Classifier(*model, image_dims=(10, 12), mean=mean, raw_scale=2.0,
                           channel_swap=(2, 1, 0))
    rng = np.random.default_rng(0)
    images = [rng.random((20, 24, 3)).astype(np.float32) for _ in range(3)]
    probs = clf.predict(images)
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # by hand: resize, ten crops, preprocess, forward, average
    resized = caffe.io.resize_image(images[1], (10, 12))
    crops = caffe.io.oversample([resized], (8, 8))
    batch = np.stack([clf.transformer.preprocess("data", c) for c in crops])
    manual = clf.forward_all(data=batch)["prob"].mean(0)
    np.testing.assert_allclose(probs[1], manual, rtol=1e-5, atol=1e-7)
    centre = clf.predict(images, oversample=False)
    assert centre.shape == (3, 5)


def test_detector_windows_with_context(model: tuple[str, str], tmp_path: Path) -> None:
    import cv2

    image = tmp_path / "im.png"
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 255, (30, 40, 3)).astype(
        np.uint8))
    det = caffe.Detector(*model, mean=np.array([0.5, 0.5, 0.5]), raw_scale=1.0,
                         context_pad=2)
    windows = np.array([[0, 0, 10, 10], [5, 8, 25, 30]])
    found = det.detect_windows([(str(image), windows)])
    assert [d["window"].tolist() for d in found] == windows.tolist()
    assert all(d["prediction"].shape == (5,) for d in found)
    crop = det.crop(caffe.io.load_image(str(image)), windows[1])
    assert crop.shape == (8, 8, 3)
    plain = caffe.Detector(*model)
    assert plain.crop(np.zeros((30, 40, 3)), windows[1]).shape == (20, 22, 3)
