"""A symbolic batch axis that really is one: every batch-dependent shape computation (Reshape
0/-1, Flatten, InnerProduct axis, Slice, Permute, PriorBox, Crop, Split, a loss) exported
once runs in onnxruntime at other batch sizes and matches PyTorch; a net that fixes its
batch is exported with that batch and says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.export import export_onnx
from caffe2torch.export.onnx import run_onnx

SHAPES = """
name: "shapes"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "split" type: "Split" bottom: "conv" top: "c1" top: "c2" }
layer { name: "perm" type: "Permute" bottom: "c1" top: "perm"
        permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "flat" type: "Flatten" bottom: "perm" top: "flat" }
layer { name: "resh" type: "Reshape" bottom: "flat" top: "resh"
        reshape_param { shape { dim: 0 dim: -1 dim: 2 } } }
layer { name: "ip_axis" type: "InnerProduct" bottom: "resh" top: "ip_axis"
        inner_product_param { num_output: 3 axis: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "pool" type: "Pooling" bottom: "c2" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "crop" type: "Crop" bottom: "c2" bottom: "pool" top: "crop"
        crop_param { axis: 2 offset: 1 } }
layer { name: "sl" type: "Slice" bottom: "crop" top: "s1" top: "s2"
        slice_param { axis: 1 slice_point: 1 } }
layer { name: "resh2" type: "Reshape" bottom: "s2" top: "resh2"
        reshape_param { shape { dim: -1 dim: 4 } } }
layer { name: "pb" type: "PriorBox" bottom: "conv" bottom: "data" top: "pb"
        prior_box_param { min_size: 4 aspect_ratio: 2 flip: true clip: true } }
"""

BATCH_SLICE = """
name: "batch_slice"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "halves" type: "Slice" bottom: "ip" top: "a" top: "b" slice_param { axis: 0 } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" }
"""

FIXED = """
name: "fixed"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 5 dim: 6 } } }
layer { name: "resh" type: "Reshape" bottom: "data" top: "resh"
        reshape_param { shape { dim: 3 dim: 10 } } }
layer { name: "ip" type: "InnerProduct" bottom: "resh" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
"""


def _net(tmp_path: Path, text: str) -> c2t.CaffeNet:
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    return c2t.load_net(path)


def _torch_outputs(net: c2t.CaffeNet, names: list[str], x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = net(torch.from_numpy(x), blobs=names)
    return [out[n].numpy() for n in names]


def test_shape_layers_run_at_any_batch(tmp_path: Path) -> None:
    net = _net(tmp_path, SHAPES)
    outputs = ["ip_axis", "resh2", "s1", "pb"]
    report = export_onnx(net, tmp_path / "m.onnx", outputs=outputs, verify=True)
    assert report.batch == "dynamic" and not report.notes
    assert report.verify is not None and report.verify.ok, report.verify.failures()
    assert sorted({c.batch for c in report.verify.checks}) == [1, 3]
    model = onnx.load(tmp_path / "m.onnx")
    dims = {o.name: o.type.tensor_type.shape.dim for o in model.graph.output}
    assert dims["resh2"][0].dim_param  # (N * 6, 4): the batch-dependent axis is symbolic
    assert dims["pb"][0].dim_value == 1  # PriorBox: one constant set of boxes
    for batch in (1, 3, 5):
        x = np.random.default_rng(batch).uniform(-1, 1, (batch, 3, 8, 8)).astype(np.float32)
        got = run_onnx(tmp_path / "m.onnx", {"data": x})
        for name, want, have in zip(outputs, _torch_outputs(net, outputs, x), got):
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5, err_msg=name)


def test_priorbox_is_a_constant(tmp_path: Path) -> None:
    """PriorBox reads only its bottoms' shapes: the file holds its boxes as a constant."""
    net = _net(tmp_path, SHAPES)
    export_onnx(net, tmp_path / "pb.onnx", outputs=["pb"])
    model = onnx.load(tmp_path / "pb.onnx")
    assert [i.name for i in model.graph.input] == []
    assert {n.op_type for n in model.graph.node} <= {"Constant", "Identity"}


def test_slice_along_the_batch_axis(tmp_path: Path) -> None:
    net = _net(tmp_path, BATCH_SLICE)
    report = export_onnx(net, tmp_path / "m.onnx", verify=True, verify_batches=[2, 6])
    assert report.batch == "dynamic" and report.verify is not None and report.verify.ok
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
    (got,) = run_onnx(tmp_path / "m.onnx", {"data": x})
    np.testing.assert_allclose(got, _torch_outputs(net, ["sum"], x)[0], rtol=1e-6, atol=1e-6)


def test_a_net_that_fixes_its_batch_says_so(tmp_path: Path) -> None:
    net = _net(tmp_path, FIXED)
    report = export_onnx(net, tmp_path / "m.onnx", verify=True)
    assert report.batch == 5
    assert any("fixed batch of 5" in n and "resh" in n for n in report.notes), report.notes
    dims = onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [5, 6]
    assert report.verify is not None and {c.batch for c in report.verify.checks} == {5}
    assert report.verify is not None and report.verify.ok


@pytest.mark.parametrize("batch", [1, 3], ids=["batch1", "batch3"])
def test_softmax_with_loss_at_any_batch(tmp_path: Path, batch: int) -> None:
    text = """
name: "loss"
layer { name: "in" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 5 } shape { dim: 2 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss"
        loss_param { ignore_label: 1 normalization: VALID } }
"""
    net = _net(tmp_path, text)
    export_onnx(net, tmp_path / "m.onnx", keep_losses=True, outputs=["loss"])
    rng = np.random.default_rng(batch)
    x = rng.normal(size=(batch, 5)).astype(np.float32)
    label = rng.integers(0, 5, batch).astype(np.float32)
    (got,) = run_onnx(tmp_path / "m.onnx", {"data": x, "label": label})
    with torch.no_grad():
        want = net(torch.from_numpy(x), torch.from_numpy(label))["loss"]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
