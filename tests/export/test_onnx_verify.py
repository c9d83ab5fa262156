"""--verify: onnxruntime against PyTorch at batch 1 and 3 on data-like inputs, absolute and
relative error per output, warnings for filler/constant weights and constant outputs, exit
1 beyond tolerance, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.cli.main import main
from caffe2torch.export import export_onnx
from caffe2torch.export.verify import data_like_inputs, verify_export

NET = """
name: "v"
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 16 dim: 16 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3
                            weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.fixture
def net_path(tmp_path: Path) -> Path:
    path = tmp_path / "v.prototxt"
    path.write_text(NET)
    return path


def test_inputs_look_like_images(net_path: Path) -> None:
    net = c2t.load_net(net_path)
    (x,) = data_like_inputs(net, batch=3)
    assert x.shape == (3, 3, 16, 16)
    assert x[0].max() > 100 and x[0].min() < -50  # mean-subtracted 0-255 picture
    assert x[1:].abs().max() <= 1  # noise for the others


def test_verify_reports_abs_and_rel_at_two_batches(net_path: Path, tmp_path: Path) -> None:
    report = export_onnx(c2t.load_net(net_path), tmp_path / "m.onnx", verify=True)
    result = report.verify
    assert result is not None and result.ok
    assert [(c.name, c.batch) for c in result.checks] == [("prob", 1), ("prob", 3)]
    for c in result.checks:
        assert c.max_abs <= 1e-5 and c.max_rel == pytest.approx(c.max_abs / c.scale)


def test_verify_fails_on_a_different_net(net_path: Path, tmp_path: Path) -> None:
    net = c2t.load_net(net_path)
    export_onnx(net, tmp_path / "m.onnx", outputs=["ip"])
    with torch.no_grad():
        net.params["ip"][0].mul_(1.01)
    result = verify_export(tmp_path / "m.onnx", net, ["ip"], [1, 3])
    assert not result.ok
    assert {c.batch for c in result.failures()} == {1, 3}
    assert all(c.max_rel > 1e-3 for c in result.failures())


def test_verify_warns_about_fillers_and_constants(net_path: Path, tmp_path: Path) -> None:
    net = c2t.load_net(net_path)
    with torch.no_grad():
        net.params["ip"][0].zero_()
    report = export_onnx(net, tmp_path / "m.onnx", verify=True, from_fillers=True)
    text = "\n".join(report.warnings)
    assert "fillers" in text
    assert "ip (all zero)" in text
    assert "output 'prob' is one constant value" in text  # softmax of zeros: 1/5 everywhere


def test_cli_verify_output_and_warning(net_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(net_path), "-o", str(tmp_path / "m.onnx"), "--verify"]) == 0
    captured = capsys.readouterr()
    assert "verify prob (batch 1): max abs" in captured.out
    assert "max rel" in captured.out and "verify ok" in captured.out
    assert "warning: no weights given" in captured.err


def test_cli_verify_failure_exits_1_without_traceback(net_path: Path, tmp_path: Path,
                                                       capsys, monkeypatch) -> None:
    """A model onnxruntime cannot run is a failed check (exit 1), reported, not raised."""
    import caffe2torch.export.verify as verify

    def broken(path: object) -> None:
        raise RuntimeError("ONNXRuntimeError: cannot load the model")

    monkeypatch.setattr(verify, "_session", broken)
    code = main(["export", str(net_path), "-o", str(tmp_path / "m.onnx"), "--verify"])
    captured = capsys.readouterr()
    assert code == 1
    assert "verify FAILED for prob" in captured.err
    assert "cannot load the model" in captured.out
    assert "Traceback" not in captured.err + captured.out


def test_cli_bad_opset_is_a_usage_error(net_path: Path, tmp_path: Path, capsys) -> None:
    for bad in ("10", "22", "x"):
        assert main(["export", str(net_path), "-o", str(tmp_path / "m.onnx"), "--opset", bad]) == 2
        assert "choose an opset from 11 to 21" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


# sqrt of (input - 1000): NaN everywhere in both runtimes; exp(1000 x input): inf or 0
NAN_NET = """
name: "nan"
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 16 dim: 16 } } }
layer { name: "root" type: "Power" bottom: "data" top: "root"
        power_param { power: 0.5 shift: -1000 } }
layer { name: "tanh" type: "TanH" bottom: "data" top: "tanh" }
"""


def test_verify_refuses_an_all_nan_output(tmp_path: Path) -> None:
    path = tmp_path / "nan.prototxt"
    path.write_text(NAN_NET)
    report = export_onnx(c2t.load_net(path), tmp_path / "m.onnx", verify=True)
    result = report.verify
    assert result is not None and not result.ok
    assert {c.name for c in result.failures()} == {"root"}
    assert all(c.nonfinite == "all NaN from PyTorch and onnxruntime"
               for c in result.checks if c.name == "root")
    (line,) = [w for w in result.warnings if "output 'root'" in w]
    assert "all NaN" in line and "batch 1, 3" in line and "--weights" in line
    assert not any("'tanh'" in w for w in result.warnings)
    # where it starts; no BatchNorm to blame here
    assert any("the first blob with inf or NaN is 'root' (layer 'root', Power" in w
               for w in result.warnings), result.warnings
    assert not any("BatchNorm" in w for w in result.warnings)


def test_verify_names_batchnorms_with_zero_statistics(tmp_path: Path) -> None:
    # deploy nets without weights (MobileNet, Inception v3): the fillers leave BatchNorm's
    # statistics at 0, each BatchNorm multiplies by 1/sqrt(eps) and the output overflows
    path = tmp_path / "bn.prototxt"
    path.write_text("""
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 16 dim: 16 } } }
layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
layer { name: "root" type: "Power" bottom: "bn" top: "root"
        power_param { power: 0.5 shift: -1e9 } }
""")
    report = export_onnx(c2t.load_net(path), tmp_path / "m.onnx", verify=True)
    assert report.verify is not None and not report.verify.ok
    first, zero = report.verify.warnings[-2:]
    assert "the first blob with inf or NaN is 'root' (layer 'root', Power" in first
    assert zero.startswith("1 BatchNorm layer(s) have all-zero statistics (bn): ")
    assert "sqrt(eps)" in zero and "--weights" in zero


def test_nonfinite_names_the_side() -> None:
    from caffe2torch.export.verify import _compare

    nan = np.full((2, 3), np.nan, np.float32)
    inf = np.full((2, 3), np.inf, np.float32)
    fine = np.ones((2, 3), np.float32)
    assert _compare("x", 1, inf, inf).nonfinite == "all inf from PyTorch and onnxruntime"
    assert not _compare("x", 1, inf, inf).ok(1e-4)
    assert _compare("x", 1, nan, fine).nonfinite == "all NaN from PyTorch"
    assert _compare("x", 1, fine, inf).nonfinite == "all inf from onnxruntime"
    mixed = np.array([np.nan, np.inf], np.float32)
    assert _compare("x", 1, mixed, mixed).nonfinite == (
        "all NaN or inf from PyTorch and onnxruntime")
    partly = np.array([np.nan, 1.0], np.float32)
    check = _compare("x", 1, partly, partly)
    assert check.nonfinite is None and check.ok(1e-4)


def test_cli_all_nan_output_is_not_verified(tmp_path: Path, capsys) -> None:
    path = tmp_path / "nan.prototxt"
    path.write_text(NAN_NET)
    code = main(["export", str(path), "-o", str(tmp_path / "m.onnx"), "--verify"])
    captured = capsys.readouterr()
    assert code == 1
    assert "warning: output 'root' is all NaN" in captured.err
    assert "verify root (batch 1): not checked, all NaN" in captured.out
    assert "no finite value to compare for root" in captured.err
    assert "verify ok" not in captured.out and "Traceback" not in captured.err


def test_verify_names_fork_bn_layers_with_zero_variance(tmp_path: Path) -> None:
    # dgd_person_reid's deploy net: the forks' BN starts its variance at 0 (not frozen)
    path = tmp_path / "bn.prototxt"
    path.write_text("""
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "fbn" type: "BN" bottom: "data" top: "fbn"
        bn_param { slope_filler { type: "constant" value: 1 } } }
layer { name: "frozen" type: "BN" bottom: "fbn" top: "frozen" bn_param { frozen: true } }
""")
    from caffe2torch.export.verify import zero_statistics

    assert zero_statistics(c2t.load_net(path)) == ["fbn"]
