"""``caffe2torch compare``: our blobs against real Caffe's (the golden nets' data.npz are
such dumps), layer by layer in Caffe's order; a deliberately perturbed weight is found at
its layer; ``--onnx`` compares onnxruntime's intermediate values the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from caffe2torch.cli.main import main
from caffe2torch.export import export_onnx
from caffe2torch.export.compare import (
    compare_with_caffe,
    compare_with_onnx,
    finishing_layers,
    read_dump,
)
from tests.export._golden_export import NET_CASES, loaded, net_params

pytestmark = pytest.mark.skipif(not NET_CASES, reason="../shared/golden/nets is absent")


@pytest.mark.parametrize("case_dir", net_params())
def test_golden_net_matches_caffe_layer_by_layer(case_dir: Path) -> None:
    case, net = loaded(case_dir)
    rtol, atol = case.tolerance("blob/")
    result = compare_with_caffe(net, read_dump(case.path / "data.npz"), rtol=max(rtol, 1e-4),
                                atol=max(atol, 1e-5))
    compared = [r for r in result.rows if not r.note]
    assert compared, "no blob compared"
    assert result.first_bad is None, (result.first_bad, result.first_bad_params)
    order = [pos for pos, _ in finishing_layers(net)]
    assert order == sorted(order)


@pytest.mark.parametrize("layer", ["conv2", "ip1"], ids=["conv2", "ip1"])
def test_perturbed_weight_is_found_at_its_layer(golden_dir: Path, layer: str) -> None:
    case, net = loaded(golden_dir / "nets" / "lenet")
    with torch.no_grad():
        net.params[layer][0][2] += 0.05  # the weights of one output channel
    result = compare_with_caffe(net, read_dump(case.path / "data.npz"))
    bad = result.first_bad
    assert bad is not None
    # an in-place ReLU finishes ip1: the row is named by the layer that makes the blob
    assert bad.blob == layer and bad.layer == layer
    assert bad.in_place == (["relu1"] if layer == "ip1" else [])
    assert f'name: "{layer}"' in result.first_bad_params
    assert all(r.ok for r in result.rows[: result.rows.index(bad)])


def test_cli_compare_names_the_perturbed_layer(golden_dir: Path, tmp_path: Path,
                                               capsys) -> None:
    case, net = loaded(golden_dir / "nets" / "lenet")
    net.save_caffemodel(tmp_path / "good.caffemodel")
    with torch.no_grad():
        net.params["conv2"][0].view(-1)[3] *= 1.5
    net.save_caffemodel(tmp_path / "bad.caffemodel")
    prototxt, dump = str(case.path / "net.prototxt"), str(case.path / "data.npz")
    assert main(["compare", prototxt, dump, "-w", str(tmp_path / "good.caffemodel")]) == 0
    assert "within tolerance of Caffe's" in capsys.readouterr().out
    assert main(["compare", prototxt, dump, "-w", str(tmp_path / "bad.caffemodel")]) == 1
    out = capsys.readouterr().out
    assert "first layer beyond tolerance: 'conv2' (Convolution)" in out
    assert "num_output: 50" in out  # the layer's parameters


def test_dump_as_a_folder_of_npy(golden_dir: Path, tmp_path: Path) -> None:
    case, net = loaded(golden_dir / "nets" / "googlenet")
    folder = tmp_path / "blobs"
    folder.mkdir()
    for key, value in read_dump(case.path / "data.npz").items():
        np.save(folder / (key.replace("/", "__") + ".npy"), value)
    result = compare_with_caffe(net, read_dump(folder), rtol=1e-3, atol=1e-4)
    assert "inception_3a/1x1" in {r.blob for r in result.rows if not r.note}


@pytest.mark.parametrize("name", ["lenet", "googlenet"], ids=["lenet", "googlenet"])
def test_onnx_intermediates_match_ours(golden_dir: Path, tmp_path: Path, name: str) -> None:
    case, net = loaded(golden_dir / "nets" / name)
    export_onnx(net, tmp_path / "m.onnx")
    result = compare_with_onnx(net, tmp_path / "m.onnx", read_dump(case.path / "data.npz"))
    compared = [r for r in result.rows if not r.note]
    assert len(compared) >= len(net.layer_names) // 2  # most layers found by node name
    assert result.first_bad is None, result.first_bad


def test_onnx_with_a_perturbed_net_names_the_layer(golden_dir: Path, tmp_path: Path) -> None:
    _case, net = loaded(golden_dir / "nets" / "lenet")
    export_onnx(net, tmp_path / "m.onnx")
    with torch.no_grad():
        net.params["ip2"][1][4] += 1.0
    result = compare_with_onnx(net, tmp_path / "m.onnx")  # data-like inputs, no dump
    assert result.first_bad is not None and result.first_bad.layer == "ip2"


def test_cli_compare_bad_dump_is_an_io_error(golden_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    prototxt = str(golden_dir / "nets" / "lenet" / "net.prototxt")
    assert main(["compare", prototxt, str(tmp_path / "x.npz")]) == 2
    assert "cannot read blob dump" in capsys.readouterr().err
    assert main(["compare", prototxt]) == 2
