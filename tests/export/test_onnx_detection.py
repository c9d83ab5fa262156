"""SSD heads in ONNX: PriorBox a constant, DetectionOutput as TopK/NonMaxSuppression/
ScatterND/NonZero giving Caffe's (1, 1, N, 7) rows, equal to the layer's own output at
batch 1 and 3; MobileNet-SSD from the corpus on a real photo (slow).

Scores that a softmax saturates to 1.0 in one runtime can be 1 - 6e-8 in the other: such
near-ties may then be ordered, and suppressed, differently. The nets here keep their
scores below saturation, as trained detectors mostly do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.export import export_onnx
from caffe2torch.export.onnx import run_onnx

MINI_SSD = """
name: "mini_ssd"
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 40 dim: 40 } } }
layer { name: "feat" type: "Convolution" bottom: "data" top: "feat"
        convolution_param { num_output: 8 kernel_size: 3 stride: 8 pad: 1
                            weight_filler { type: "gaussian" std: 0.02 } } }
layer { name: "loc" type: "Convolution" bottom: "feat" top: "loc"
        convolution_param { num_output: 16 kernel_size: 1
                            weight_filler { type: "gaussian" std: 0.05 } } }
layer { name: "loc_perm" type: "Permute" bottom: "loc" top: "loc_perm"
        permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "loc_flat" type: "Flatten" bottom: "loc_perm" top: "loc_flat" }
layer { name: "conf" type: "Convolution" bottom: "feat" top: "conf"
        convolution_param { num_output: 16 kernel_size: 1
                            weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "conf_perm" type: "Permute" bottom: "conf" top: "conf_perm"
        permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "conf_flat" type: "Flatten" bottom: "conf_perm" top: "conf_flat" }
layer { name: "conf_resh" type: "Reshape" bottom: "conf_flat" top: "conf_resh"
        reshape_param { shape { dim: 0 dim: -1 dim: 4 } } }
layer { name: "conf_soft" type: "Softmax" bottom: "conf_resh" top: "conf_soft"
        softmax_param { axis: 2 } }
layer { name: "conf_out" type: "Flatten" bottom: "conf_soft" top: "conf_out" }
layer { name: "prior" type: "PriorBox" bottom: "feat" bottom: "data" top: "prior"
        prior_box_param { min_size: 10 max_size: 20 aspect_ratio: 2 flip: true clip: true
                          variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }
layer { name: "det" type: "DetectionOutput" bottom: "loc_flat" bottom: "conf_out"
        bottom: "prior" top: "det"
        detection_output_param { num_classes: 4 share_location: true background_label_id: 0
          nms_param { nms_threshold: 0.45 top_k: 20 } code_type: CENTER_SIZE
          keep_top_k: KEEP confidence_threshold: THRESHOLD } }
"""


def _mini(tmp_path: Path, keep: int = 10, threshold: float = 0.3) -> c2t.CaffeNet:
    path = tmp_path / "mini_ssd.prototxt"
    path.write_text(MINI_SSD.replace("KEEP", str(keep)).replace("THRESHOLD", str(threshold)))
    torch.manual_seed(0)  # the fillers: scores below softmax's saturation (see below)
    net = c2t.load_net(path)
    with torch.no_grad():
        net.params["feat"][1].fill_(0.1)
    return net


@pytest.mark.parametrize(("keep", "threshold"), [(10, 0.3), (200, 0.3), (10, 1.0)],
                         ids=["keep_top_k", "all_kept", "none_kept"])
def test_detection_output_equals_the_layer(tmp_path: Path, keep: int, threshold: float) -> None:
    net = _mini(tmp_path, keep, threshold)
    report = export_onnx(net, tmp_path / "m.onnx", verify=True)
    assert report.outputs == ["det"] and report.batch == "dynamic"
    assert report.verify is not None and report.verify.ok, report.verify.checks
    ops = {n.op_type for n in onnx.load(tmp_path / "m.onnx").graph.node}
    assert {"NonMaxSuppression", "TopK", "NonZero"} <= ops
    for batch in (1, 3):
        x = np.random.default_rng(batch).uniform(-120, 130, (batch, 3, 40, 40))
        x = x.astype(np.float32)
        (got,) = run_onnx(tmp_path / "m.onnx", {"data": x})
        with torch.no_grad():
            want = net(torch.from_numpy(x))["det"].numpy()
        assert got.shape == want.shape and got.shape[:2] == (1, 1) and got.shape[3] == 7
        np.testing.assert_array_equal(got[..., :2], want[..., :2])  # image, label
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        rows = got.shape[2]
        if threshold >= 1.0:  # Caffe's placeholder: one row of -1 per image
            assert rows == batch and (got[0, 0, :, 1:] == -1).all()
        else:
            assert rows > 0 and (keep > 20 * 3 or rows <= keep * batch)


@pytest.mark.slow
def test_mobilenet_ssd_on_a_photo(corpus_dir: Path, tmp_path: Path) -> None:
    """MobileNet-SSD (chuanqi305) with deterministic weights (box regressors scaled down so
    that boxes stay in the image, as trained ones do) on Grace Hopper's photo."""
    cbook = pytest.importorskip("matplotlib.cbook")
    import cv2

    net = c2t.load_net(corpus_dir / "chuanqi305__MobileNet-SSD" / "deploy.prototxt")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                if net.ir.layer(name).type == "BatchNorm":
                    blob.copy_(torch.ones_like(blob) if i else torch.zeros_like(blob))
                elif blob.dim() >= 2:
                    fan_in = blob[0].numel()
                    scale = 0.02 if "mbox_loc" in name else 1.0
                    blob.copy_(torch.randn(blob.shape, generator=gen) * scale / fan_in**0.5)
                else:
                    blob.zero_()
    export_onnx(net, tmp_path / "ssd.onnx")
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    x = (cv2.resize(image, (300, 300)).astype(np.float32) - 127.5) * 0.007843
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    (got,) = run_onnx(tmp_path / "ssd.onnx", {"data": x})
    with torch.no_grad():
        want = net(torch.from_numpy(x))["detection_out"].numpy()
    assert got.shape == want.shape
    np.testing.assert_array_equal(got[..., :2], want[..., :2])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


ROI_NET = """
name: "roi"
layer { name: "in" type: "Input" top: "data" top: "rois"
        input_param { shape { dim: 2 dim: 4 dim: 16 dim: 16 } shape { dim: 2 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "pool" type: "ROIPooling" bottom: "conv" bottom: "rois" top: "pool"
        roi_pooling_param { pooled_h: 3 pooled_w: 2 spatial_scale: 0.5 } }
"""


def test_roi_pooling_is_max_roi_pool(tmp_path: Path) -> None:
    path = tmp_path / "roi.prototxt"
    path.write_text(ROI_NET)
    net = c2t.load_net(path)
    report = export_onnx(net, tmp_path / "roi.onnx", verify=True)
    assert report.verify is not None and report.verify.ok
    assert "MaxRoiPool" in {n.op_type for n in onnx.load(tmp_path / "roi.onnx").graph.node}
    x = np.random.default_rng(0).normal(size=(2, 4, 16, 16)).astype(np.float32)
    # rounding at .5 after scaling, an ROI past the edge, an inverted one (width 1)
    rois = np.array([[0, 1, 2, 20, 25], [1, 0, 0, 31, 31], [0, 10.4, 3.6, 12, 30],
                     [1, 5, 5, 4, 4], [0, 3, 3, 40, 40]], np.float32)
    (got,) = run_onnx(tmp_path / "roi.onnx", {"data": x, "rois": rois})
    with torch.no_grad():
        want = net(torch.from_numpy(x), torch.from_numpy(rois))["pool"].numpy()
    assert got.shape == want.shape == (5, 3, 3, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
