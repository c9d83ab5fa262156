"""Fillers deferred until a caffemodel has been copied (load_net / the solver with
weights): blobs the weights cover are never drawn, the rest draw exactly what an eager
build would have drawn, and no builder computes anything from a value it was handed before
the draw (the contract deferral relies on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import CaffeError
from caffe2torch.layers.fillers import PendingFills, deferred_fills, make_filled
from caffe2torch.proto import caffe_pb2
from tests.conftest import CORPUS, GOLDEN
from tests.corpus.test_corpus_build import corpus_nets

# --------------------------------------------------------------------------- helpers


def _randomise_fillers(message: Any) -> None:
    """Every FillerParameter reachable in ``message``'s set fields becomes a gaussian, so
    that each parameter blob of the net has a random filler to defer."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        values = value if field.is_repeated else [value]
        for sub in values:
            if field.message_type.name == "FillerParameter":
                sub.Clear()
                sub.type, sub.std = "gaussian", 0.5
            else:
                _randomise_fillers(sub)
    if message.DESCRIPTOR.name == "LayerParameter":
        # the type's own parameter message, even when the file leaves it at its defaults
        for field in message.DESCRIPTOR.fields:
            if field.message_type is None or not field.name.endswith("_param"):
                continue
            fillers = [f for f in field.message_type.fields
                       if f.message_type is not None and f.message_type.name == "FillerParameter"
                       and not f.is_repeated]
            if fillers and message.HasField(field.name):
                for f in fillers:
                    filler = getattr(getattr(message, field.name), f.name)
                    filler.type, filler.std = "gaussian", 0.5


def _state(net: c2t.CaffeNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def assert_deferral_is_invisible(net_param: Any, phase: str) -> int:
    """Build eagerly and deferred-then-run from the same seed: identical parameters.
    Returns how many draws were deferred."""
    torch.manual_seed(1234)
    eager = c2t.build_net(net_param, phase)
    torch.manual_seed(1234)
    pending = PendingFills()
    with deferred_fills(pending):
        deferred = c2t.build_net(net_param, phase)
    count = len(pending._fills)
    pending.run()
    a, b = _state(eager), _state(deferred)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after a deferred fill"
    return count


def _try(net_param: Any, phase: str) -> int | None:
    try:
        return assert_deferral_is_invisible(net_param, phase)
    except CaffeError as err:  # a net that needs data files or a Python layer
        return pytest.skip(f"does not build here: {str(err).splitlines()[0]}")


# --------------------------------------------------------------------------- every layer


def _golden_layer_cases() -> list[Path]:
    root = GOLDEN / "layers"
    return sorted(p.parent for p in root.rglob("net.prototxt")) if root.exists() else []


LAYER_CASES = _golden_layer_cases()


@pytest.mark.parametrize("case", LAYER_CASES, ids=[f"{p.parent.name}/{p.name}"
                                                   for p in LAYER_CASES])
def test_golden_layer_nets(case: Path) -> None:
    net_param = c2t.read_net(case / "net.prototxt")
    for layer in net_param.layer:
        _randomise_fillers(layer)
    _try(net_param, "TRAIN")


# fork layers with filled parameter blobs (BVLC's are covered by the golden layer nets)
FORK_TYPES = {"BN", "MarginInnerProduct", "CenterLoss", "Normalize", "ConvolutionDepthwise",
              "DepthwiseConvolution", "NormalizedInnerProduct", "InnerDistance"}


def _corpus_nets_with_fork_params() -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:]]
    types = {r[0]: set(r[6].split(",")) for r in rows if len(r) > 6}
    return [n for n in corpus_nets() if types.get(n, set()) & FORK_TYPES]


@pytest.mark.shared
@pytest.mark.parametrize("name", _corpus_nets_with_fork_params())
def test_corpus_nets_with_fork_layers(name: str) -> None:
    net_param = c2t.read_net(CORPUS / name)
    for layer in net_param.layer:
        _randomise_fillers(layer)
    _try(net_param, "TEST")


# --------------------------------------------------------------------------- load_net


NET = """
name: "fine"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0.2 } } }
layer { name: "ip_new" type: "InnerProduct" bottom: "conv1" top: "ip_new"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
"""


def test_covered_blobs_draw_nothing(tmp_path: Path) -> None:
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    net = c2t.load_net(proto)
    model = tmp_path / "all.caffemodel"
    net.save_caffemodel(model)
    state = torch.get_rng_state()
    loaded = c2t.load_net(proto, weights=model)
    assert torch.equal(torch.get_rng_state(), state), "a covered filler drew random numbers"
    for name in ("conv1", "ip_new"):
        for mine, theirs in zip(loaded.params[name], net.params[name]):
            assert torch.equal(mine, theirs)


def test_uncovered_blobs_are_filled(tmp_path: Path) -> None:
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    model = tmp_path / "conv1.caffemodel"
    param = caffe_pb2.NetParameter(name="fine")
    layer = param.layer.add(name="conv1", type="Convolution")
    for arr in (np.ones((4, 3, 3, 3), np.float32), np.full(4, 7, np.float32)):
        blob = layer.blobs.add()
        blob.shape.dim.extend(arr.shape)
        blob.data.extend(arr.ravel().tolist())
    model.write_bytes(param.SerializeToString())
    net = c2t.load_net(proto, weights=model)
    assert torch.equal(net.params["conv1"][0], torch.ones(4, 3, 3, 3))
    weight = net.params["ip_new"][0]
    # xavier: U(-a, a), a = sqrt(3 / fan_in), fan_in = 4 * 6 * 6
    bound = (3 / 144) ** 0.5
    assert weight.abs().max() <= bound and weight.abs().max() > bound / 2
    assert torch.equal(net.params["ip_new"][1], torch.zeros(5))


def test_bad_filler_still_fails_at_build_time() -> None:
    filler = caffe_pb2.FillerParameter(type="uniform", min=2, max=1)
    with deferred_fills(PendingFills()), pytest.raises(CaffeError, match=r"min .* > max"):
        make_filled((3,), filler)
    sparse = caffe_pb2.FillerParameter(type="gaussian", sparse=9)
    with deferred_fills(PendingFills()), pytest.raises(CaffeError, match="exceeds"):
        make_filled((3, 2), sparse)


def test_solver_fine_tuning_skips_covered_fillers(tmp_path: Path, monkeypatch) -> None:
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET + 'layer { name: "label" type: "Input" top: "label" '
                     'input_param { shape { dim: 2 dim: 5 } } }\n'
                     'layer { name: "loss" type: "EuclideanLoss" bottom: "ip_new" '
                     'bottom: "label" top: "loss" }\n')
    net = c2t.load_net(proto, phase="TRAIN")
    model = tmp_path / "w.caffemodel"
    net.save_caffemodel(model)
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 1\nlr_policy: "fixed"\n'
        'snapshot_prefix: "snap"\nrandom_seed: 3\n')
    monkeypatch.chdir(tmp_path)
    draws: list[tuple[int, ...]] = []
    real = torch.Tensor.normal_

    def counting(self, *args, **kwargs):
        draws.append(tuple(self.shape))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "normal_", counting)
    solver = c2t.get_solver("solver.prototxt", weights=str(model), log=None)
    assert draws == [], "the covered gaussian filler of conv1 ran"
    for mine, theirs in zip(solver.net.params["conv1"], net.params["conv1"]):
        assert torch.equal(mine, theirs)
