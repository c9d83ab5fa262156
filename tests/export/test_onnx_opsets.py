"""--opset 11..21: each opset on the golden nets (onnxruntime against real Caffe's blobs)
and on a net of the layers whose ONNX form changes between opsets (ceil pooling, LRN,
Interp, Deconvolution, BatchNorm, Softmax on an inner axis). Every run checks opsets 11 and
21 on every golden net and every opset on the small nets and the layers net; every opset on
the big nets runs with C2T_OPSET_SWEEP=1."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

import caffe2torch as c2t
from caffe2torch.export import export_onnx
from caffe2torch.export.onnx import DEFAULT_OPSET, OPSETS, run_onnx
from tests.export._golden_export import NET_CASES, loaded, net_params, saved_blobs
from tests.export.test_onnx_golden import _exportable_outputs
from tests.graph.test_golden_nets import print_summary
from tests.support.golden import assert_matches

FAST_OPSETS = (11, 21)
RESULTS: dict[tuple[str, int], str] = {}


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if RESULTS:
        ok = sum(v == "ok" for v in RESULTS.values())
        lines = [f"golden nets x opsets exported and reproduced: {ok}/{len(RESULTS)}"]
        lines += [f"  FAILED {k[0]} opset {k[1]}: {v}" for k, v in sorted(RESULTS.items())
                  if v != "ok"]
        print_summary(request, lines)


# Every opset on the big golden nets takes the better part of an hour on 2 cores: run it
# on request (C2T_OPSET_SWEEP=1); the big nets get opsets 11 and 21 in every run, the small
# ones every opset.
SWEEP = pytest.mark.skipif(not os.environ.get("C2T_OPSET_SWEEP"),
                           reason="every opset on the big golden nets: set C2T_OPSET_SWEEP=1")


def _params() -> list:
    out = []
    for p in net_params():
        big = any(m.name == "slow" for m in p.marks)
        for opset in OPSETS:
            marks = list(p.marks)
            if opset not in FAST_OPSETS:
                marks.append(SWEEP if big else pytest.mark.slow)
            out.append(pytest.param(p.values[0], opset, id=f"{p.id}-opset{opset}", marks=marks))
    return out


@pytest.mark.skipif(not NET_CASES, reason="../shared/golden/nets is absent")
@pytest.mark.parametrize(("case_dir", "opset"), _params())
def test_golden_net_at_opset(case_dir: Path, opset: int, tmp_path: Path) -> None:
    try:
        case, net = loaded(case_dir)
        outputs = _exportable_outputs(net, saved_blobs(case))
        path = tmp_path / "model.onnx"
        report = export_onnx(net, path, outputs=outputs, opset=opset)
        assert onnx.load(path).opset_import[0].version == opset
        feeds = {n: np.asarray(case.arrays[f"input/{n}"], np.float32) for n in report.inputs}
        for name, value in zip(outputs, run_onnx(path, feeds)):
            assert_matches(case, f"blob/{name}", value)
    except BaseException as exc:
        RESULTS[(case_dir.name, opset)] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        raise
    RESULTS[(case_dir.name, opset)] = "ok"


LAYERS = """
name: "opset_layers"
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 13 dim: 13 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3
                            weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "ave" type: "Pooling" bottom: "conv" top: "ave"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "lrn" type: "LRN" bottom: "pool" top: "lrn" lrn_param { local_size: 3 alpha: 0.1 } }
layer { name: "lrn_w" type: "LRN" bottom: "ave" top: "lrn_w"
        lrn_param { local_size: 3 alpha: 0.1 norm_region: WITHIN_CHANNEL } }
layer { name: "interp" type: "Interp" bottom: "lrn" top: "interp" interp_param { zoom_factor: 2 } }
layer { name: "deconv" type: "Deconvolution" bottom: "lrn_w" top: "deconv"
        convolution_param { num_output: 2 kernel_size: 4 stride: 2 group: 2
                            weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "softmax" type: "Softmax" bottom: "interp" top: "softmax" softmax_param { axis: 2 } }
"""


def _randomized(path: Path) -> c2t.CaffeNet:
    import torch

    net = c2t.load_net(path)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        mean, var, factor = net.params["bn"]
        mean.copy_(torch.randn(mean.shape, generator=gen) * 0.1)
        var.copy_(torch.rand(var.shape, generator=gen) + 0.5)
        factor.fill_(1.0)
        for blob in net.params["scale"]:
            blob.copy_(torch.rand(blob.shape, generator=gen) + 0.5)
    return net


@pytest.mark.parametrize("opset", list(OPSETS), ids=[f"opset{o}" for o in OPSETS])
def test_opset_sensitive_layers(tmp_path: Path, opset: int) -> None:
    path = tmp_path / "layers.prototxt"
    path.write_text(LAYERS)
    report = export_onnx(_randomized(path), tmp_path / "m.onnx", opset=opset,
                         outputs=["softmax", "deconv"], verify=True)
    assert onnx.load(tmp_path / "m.onnx").opset_import[0].version == opset
    assert report.verify is not None and report.verify.ok, report.verify.failures()


def test_default_opset_is_the_newest_supported_and_runs(tmp_path: Path) -> None:
    assert DEFAULT_OPSET == OPSETS[-1] == 21
    path = tmp_path / "layers.prototxt"
    path.write_text(LAYERS)
    report = export_onnx(_randomized(path), tmp_path / "m.onnx", outputs=["softmax"],
                         verify=True)
    assert report.opset == 21 and report.verify is not None and report.verify.ok
