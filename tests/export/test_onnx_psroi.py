"""R-FCN's PSROIPooling in standard ONNX (MatMul, GatherElements, Floor/Ceil): equal to the
layer at batch 1 and 2 on random ROIs (corners at .5 after rounding, past the map's edge,
inverted, tiny), at opsets 11 and 21."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.export import export_onnx
from caffe2torch.export.onnx import run_onnx

PSROI_NET = """
name: "rfcn_head"
layer { name: "in" type: "Input" top: "data" top: "rois"
        input_param { shape { dim: 2 dim: 4 dim: 19 dim: 23 } shape { dim: 3 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 18 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "psroi" type: "PSROIPooling" bottom: "conv" bottom: "rois" top: "psroi"
        psroi_pooling_param { spatial_scale: 0.0625 output_dim: 2 group_size: 3 } }
layer { name: "vote" type: "Pooling" bottom: "psroi" top: "vote"
        pooling_param { pool: AVE kernel_size: 3 stride: 3 } }
"""


def _rois(rng: np.random.Generator, batch: int, count: int) -> np.ndarray:
    x1 = rng.uniform(-40, 380, count)
    y1 = rng.uniform(-40, 300, count)
    rois = np.stack([rng.integers(0, batch, count), x1, y1,
                     x1 + rng.uniform(-20, 250, count), y1 + rng.uniform(-20, 250, count)], 1)
    special = [[0, 7.5, 8.5, 100.5, 60.49], [batch - 1, 0, 0, 400, 400],
               [0, 50, 50, 40, 40], [batch - 1, 300, 250, 301, 250.4], [0, -3.5, -2.5, 5, 5]]
    return np.concatenate([rois, special]).astype(np.float32)


@pytest.mark.parametrize("opset", [11, 21])
def test_psroi_pooling_equals_the_layer(tmp_path: Path, opset: int) -> None:
    path = tmp_path / "rfcn.prototxt"
    path.write_text(PSROI_NET)
    torch.manual_seed(0)
    net = c2t.load_net(path)
    report = export_onnx(net, tmp_path / "m.onnx", opset=opset, outputs=["psroi", "vote"],
                         verify=True)
    assert report.verify is not None and report.verify.ok, report.verify.checks
    model = onnx.load(tmp_path / "m.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert {"MatMul", "GatherElements"} <= ops
    assert not any(n.domain for n in model.graph.node)  # standard ops only
    rng = np.random.default_rng(opset)
    for batch, count in ((1, 7), (2, 40)):
        x = rng.normal(size=(batch, 4, 19, 23)).astype(np.float32)
        rois = _rois(rng, batch, count)
        got = run_onnx(tmp_path / "m.onnx", {"data": x, "rois": rois})
        with torch.no_grad():
            want = net(torch.from_numpy(x), torch.from_numpy(rois), blobs=["psroi"])
        assert got[0].shape == (len(rois), 2, 3, 3)
        np.testing.assert_allclose(got[0], want["psroi"].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[1], want["vote"].numpy(), rtol=1e-5, atol=1e-5)
        assert (got[0] == 0).any() and (got[0] != 0).any()  # empty bins and full ones
