"""YOLO v2's YoloDetectionOutput in standard ONNX (decode, NonMaxSuppression per image in
the fork's scan order): the same rows as the layer at batch 1 and 3, channels that do and
do not divide into the boxes, nothing kept, opsets 11 and 21."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.export import export_onnx
from caffe2torch.export.onnx import run_onnx

YOLO = """
name: "yolo_head"
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 20 dim: 20 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: CHANNELS kernel_size: 4 stride: 4
                            weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "det" type: "YoloDetectionOutput" bottom: "conv" top: "det"
        yolo_detection_output_param { side: 5 num_classes: 3 num_box: 2
          confidence_threshold: THRESHOLD nms_threshold: 0.3
          biases: 1.08 biases: 1.19 biases: 3.42 biases: 4.41 } }
"""


def _net(tmp_path: Path, channels: int, threshold: float) -> c2t.CaffeNet:
    path = tmp_path / "yolo.prototxt"
    path.write_text(YOLO.replace("CHANNELS", str(channels))
                    .replace("THRESHOLD", str(threshold)))
    torch.manual_seed(0)
    return c2t.load_net(path)


@pytest.mark.parametrize(("channels", "threshold", "opset"),
                         [(16, 0.2, 21), (17, 0.2, 11), (16, 2.0, 21)],
                         ids=["whole_boxes", "padded_boxes", "none_kept"])
def test_yolo_detection_output_equals_the_layer(tmp_path: Path, channels: int,
                                                threshold: float, opset: int) -> None:
    net = _net(tmp_path, channels, threshold)
    report = export_onnx(net, tmp_path / "m.onnx", opset=opset, verify=True)
    assert report.batch == "dynamic"
    assert report.verify is not None and report.verify.ok, report.verify.checks
    model = onnx.load(tmp_path / "m.onnx")
    assert "NonMaxSuppression" in {n.op_type for n in model.graph.node}
    for batch in (1, 3):
        x = np.random.default_rng(batch).uniform(0, 1, (batch, 3, 20, 20)).astype(np.float32)
        (got,) = run_onnx(tmp_path / "m.onnx", {"data": x})
        with torch.no_grad():
            want = net(torch.from_numpy(x))["det"].numpy()
        assert got.shape == want.shape and got.shape[:2] == (1, 1) and got.shape[3] == 7
        np.testing.assert_array_equal(got[..., :2], want[..., :2])  # image, class
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        if threshold > 1:
            assert got.shape[2] == 0
        else:  # NMS dropped some of the boxes above the threshold, in every image
            assert set(got[0, 0, :, 0]) == set(range(batch))
            assert 0 < got.shape[2] < batch * 50


def test_nan_confidences_are_kept_as_the_fork_keeps_them(tmp_path: Path) -> None:
    """The fork skips a box only when conf < threshold, so a NaN map (a net whose filler
    BatchNorm stats overflow) keeps every box; the export must not drop them."""
    net = _net(tmp_path, 16, 0.2)
    export_onnx(net, tmp_path / "m.onnx", opset=21)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 20, 20)).astype(np.float32)
    x[0, :, :8, :8] = np.nan  # the cells of the first two grid rows and columns
    (got,) = run_onnx(tmp_path / "m.onnx", {"data": x})
    with torch.no_grad():
        want = net(torch.from_numpy(x))["det"].numpy()
    assert np.isnan(want[..., 2]).any()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
