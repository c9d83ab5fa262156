"""The ``caffe2torch`` command line: verbs run in-process through ``main([...])`` (which
returns the exit code), plus one real ``python -m caffe2torch`` run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2torch.cli.common import normalize_argv
from caffe2torch.cli.main import main
from caffe2torch.io.binary import read_caffemodel, write_caffemodel_arrays
from caffe2torch.proto import caffe_pb2
from tests.conftest import CORPUS, GOLDEN, REPO, need_shared

UPGRADE = GOLDEN / "upgrade"

V1_NET = """name: "tiny"
input: "data"
input_dim: 1
input_dim: 1
input_dim: 8
input_dim: 8
layers {
  name: "ip"
  type: INNER_PRODUCT
  bottom: "data"
  top: "ip"
  blobs_lr: 1
  blobs_lr: 2
  inner_product_param { num_output: 3 }
}
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }
"""

TRAIN_TEST = """name: "tt"
layer { name: "d" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "data" top: "acc"
        include { phase: TEST } }
layer { name: "drop" type: "Dropout" bottom: "ip" top: "ip" include { phase: TRAIN } }
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_normalize_argv() -> None:
    assert normalize_argv(["train", "-solver", "s.prototxt", "-weights=w", "-o", "x"]) == [
        "train", "--solver", "s.prototxt", "--weights=w", "-o", "x"]
    assert normalize_argv(["info", "--", "-model"]) == ["info", "--", "-model"]
    assert normalize_argv(["-3", "-x"]) == ["-3", "-x"]


def test_help_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "upgrade" in capsys.readouterr().out
    capsys.readouterr()
    assert main([]) == 2
    assert "train a net from a solver prototxt" in capsys.readouterr().err  # the verbs
    assert main(["nonsense-verb"]) == 2
    assert main(["info"]) == 2  # FILE missing


# ----------------------------------------------------------------------------- upgrade


def test_upgrade_v1_text_to_stdout_and_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "old.prototxt", V1_NET)
    assert main(["upgrade", str(src)]) == 0
    out = capsys.readouterr()
    net = text_format.Parse(out.out, caffe_pb2.NetParameter())
    assert [ly.type for ly in net.layer] == ["Input", "InnerProduct", "Softmax"]
    assert [p.lr_mult for p in net.layer[1].param] == [1, 2]
    assert "upgraded" in out.err
    dst = tmp_path / "new.prototxt"
    assert main(["upgrade", str(src), "-o", str(dst)]) == 0
    assert dst.read_text() == out.out
    dst2 = tmp_path / "new2.prototxt"
    assert main(["upgrade", str(src), str(dst2)]) == 0  # Caffe's tools: IN OUT
    assert dst2.read_text() == out.out
    assert main(["upgrade", str(dst)]) == 0  # already current: re-printed, rc 0
    again = capsys.readouterr()
    assert again.out == out.out and "latest" in again.err


def test_upgrade_warns_once_per_problem(tmp_path: Path) -> None:
    # a V0 data layer with window_data's det_* fields (caffe-cvprw15's CIFAR nets): Caffe
    # logs "Unknown parameter" and continues; the verb says so once, then exits 1 as
    # upgrade_net_proto_text does
    src = _write(tmp_path / "v0.prototxt", """name: "v0"
layers { layer { name: "data" type: "data" source: "db" batchsize: 2 det_context_pad: 16 }
         top: "data" top: "label" }
""")
    # a process of its own: pytest's log capture would hide what the log prints
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "caffe2torch", "upgrade", str(src)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("Unknown parameter det_context_pad for layer type data") == 1
    assert f"{src}: warning: Unknown parameter det_context_pad" in proc.stderr
    assert 'type: "Data"' in proc.stdout


@pytest.mark.shared
def test_upgrade_matches_caffe_golden(capsys: pytest.CaptureFixture[str]) -> None:
    case = need_shared(UPGRADE / "BVLC__caffe@11a4c16__examples__mnist__lenet_train_test.prototxt")
    assert main(["upgrade", str(case / "in.prototxt")]) == 0
    assert capsys.readouterr().out == (case / "out.prototxt").read_text()


@pytest.mark.shared
def test_upgrade_solver_enum(capsys: pytest.CaptureFixture[str]) -> None:
    case = need_shared(UPGRADE / "synthetic__solver_type_ADAM.prototxt")
    assert main(["upgrade", str(case / "in.prototxt")]) == 0
    out = capsys.readouterr().out
    assert out == (case / "out.prototxt").read_text()
    assert 'type: "Adam"' in out
    both = UPGRADE / "synthetic__solver_type_and_type_both.prototxt" / "in.prototxt"
    assert main(["upgrade", str(both)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{both}:") and ": error: " in err and "help:" in err


@pytest.mark.shared
def test_upgrade_refused_mixed_net(capsys: pytest.CaptureFixture[str]) -> None:
    src = need_shared(UPGRADE / "synthetic__mixed_layer_layers_from_seed.prototxt") / "in.prototxt"
    assert main(["upgrade", str(src)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    first = captured.err.splitlines()[0]
    path, line, col, rest = first.split(":", 3)
    assert path == str(src) and int(line) > 0 and int(col) > 0
    assert rest.startswith(" error: ")
    assert "Traceback" not in captured.err


@pytest.mark.shared
def test_upgrade_v1_caffemodel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = need_shared(CORPUS / "pl8787__exp_caffe@932c88a/examples/mnist/lenet_iter_10000")
    dst = tmp_path / "lenet.caffemodel"
    assert main(["upgrade", str(src)]) == 2  # binary needs an output file
    assert main(["upgrade", str(src), "-o", str(dst)]) == 0
    upgraded = read_caffemodel(dst)
    assert upgraded == read_caffemodel(src)
    raw = caffe_pb2.NetParameter()
    raw.ParseFromString(dst.read_bytes())
    assert len(raw.layers) == 0 and len(raw.layer) == 9  # really written as V2
    assert "upgraded" in capsys.readouterr().err


def test_io_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.prototxt"
    assert main(["upgrade", str(missing)]) == 2
    assert main(["info", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{missing}: error: cannot read the file")
    bad = _write(tmp_path / "bad.prototxt", 'name: "x"\nlayer {\n  top: 3\n}\n')
    assert main(["info", str(bad)]) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"{bad}:3:") and ": error: " in first
    src = _write(tmp_path / "ok.prototxt", V1_NET)
    assert main(["upgrade", str(src), "-o", str(tmp_path / "no" / "dir" / "x")]) == 2
    assert "cannot write" in capsys.readouterr().err


# ----------------------------------------------------------------------------- info


def test_info_phases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "tt.prototxt", TRAIN_TEST)
    # the TEST phase cannot be built (Accuracy's label 'data' has 4 values per prediction):
    # the tables are printed, the build error goes to stderr and the exit code is 1
    assert main(["info", str(src)]) == 1
    out = capsys.readouterr().out
    train, test = out.split("phase TEST")
    assert "phase TRAIN: 3 layers" in train and "drop" in train and "acc" not in train
    assert test.startswith(": 3 layers") and "acc" in test and "drop" not in test
    assert main(["info", str(src), "-phase", "test"]) == 1  # Caffe's one-dash spelling
    only = capsys.readouterr().out
    assert main(["info", str(src), "-phase", "train"]) == 0
    assert "phase TRAIN" not in only and "Accuracy" in only
    assert main(["info", str(src), "--phase", "TRIAN"]) == 2


# the data layer is TRAIN-only and nothing names TEST: the TEST phase has no data at all
TRAIN_ONLY = """name: "to"
layer { name: "d" type: "Input" top: "data" top: "label" include { phase: TRAIN }
        input_param { shape { dim: 2 dim: 4 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_info_train_only_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --phase, a phase whose data layers are all in the other phase is a note, not
    an error; asked for with --phase it is listed and fails as before."""
    src = _write(tmp_path / "to.prototxt", TRAIN_ONLY)
    assert main(["info", str(src)]) == 0
    captured = capsys.readouterr()
    assert "phase TRAIN: 3 layers" in captured.out and "total: 15 params" in captured.out
    assert "phase TEST:" not in captured.out and captured.err == ""
    (note,) = [line for line in captured.out.splitlines() if "phase TEST" in line]
    assert note.startswith("note: phase TEST not listed: ")
    assert "unknown bottom blob 'data'" in note and "TRAIN-only file" in note
    assert "--phase TEST lists that phase anyway" in note and "--phase TRAIN" in note
    assert main(["info", str(src), "--phase", "TEST"]) == 1
    captured = capsys.readouterr()
    assert "phase TEST: 2 layers" in captured.out and "note:" not in captured.out
    assert "unknown bottom blob 'data'" in captured.err
    assert main(["info", str(src), "--phase", "TRAIN"]) == 0
    # an Input layer in every phase (a label) does not make TEST's missing data its own
    with_label = TRAIN_ONLY.replace(
        'layer { name: "ip"', 'layer { name: "l" type: "Input" top: "lab" '
        'input_param { shape { dim: 2 } } }\nlayer { name: "ip"')
    assert main(["info", str(_write(tmp_path / "l.prototxt", with_label))]) == 0
    assert "note: phase TEST not listed" in capsys.readouterr().out


# LRCN's deploy_lstm.prototxt in small: declared inputs, the Reshapes before the LSTM-like
# layer say include { phase: TEST } and no rule names TRAIN
TEST_ONLY_RESHAPE = """name: "lrcn"
input: "data" input_shape { dim: 6 dim: 4 }
layer { name: "fc6" type: "InnerProduct" bottom: "data" top: "fc6"
        inner_product_param { num_output: 5 } }
layer { name: "reshape-data" type: "Reshape" bottom: "fc6" top: "fc6-reshape"
        reshape_param { shape { dim: 3 dim: 2 dim: 5 } } include { phase: TEST } }
layer { name: "fc8" type: "InnerProduct" bottom: "fc6-reshape" top: "fc8"
        inner_product_param { num_output: 2 axis: 2 } }
"""


def test_info_test_only_reshapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --phase, a phase that lacks layers the file restricts to the other phase, in a
    file whose rules never name it, is a note naming those layers; --phase still fails, and
    a file whose rules name both phases keeps the error."""
    src = _write(tmp_path / "lrcn.prototxt", TEST_ONLY_RESHAPE)
    assert main(["info", str(src)]) == 0
    captured = capsys.readouterr()
    assert "phase TEST: 4 layers" in captured.out and "3x2x2" in captured.out
    assert "phase TRAIN:" not in captured.out and captured.err == ""
    (note,) = [line for line in captured.out.splitlines() if "phase TRAIN" in line]
    assert note.startswith("note: phase TRAIN not listed: no rule of the file names TRAIN")
    assert "('reshape-data')" in note and "TEST-only file" in note
    assert "unknown bottom blob 'fc6-reshape'" in note and "--phase TRAIN lists" in note
    assert main(["info", str(src), "--phase", "TRAIN"]) == 1
    assert "unknown bottom blob 'fc6-reshape'" in capsys.readouterr().err
    both = TEST_ONLY_RESHAPE.replace('top: "fc8"', 'top: "fc8" include { phase: TRAIN }')
    assert main(["info", str(_write(tmp_path / "both.prototxt", both))]) == 1
    captured = capsys.readouterr()
    assert "not listed" not in captured.out and "fc6-reshape" in captured.err


def test_info_no_phase_builds_is_an_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A file whose data is made by no phase at all: every phase is listed and fails."""
    src = _write(tmp_path / "none.prototxt", TRAIN_ONLY.replace("phase: TRAIN", "stage: 'x'")
                 .replace('name: "loss"', 'name: "loss" include { phase: TRAIN }'))
    assert main(["info", str(src)]) == 1
    captured = capsys.readouterr()
    assert "phase TRAIN: 2 layers" in captured.out and "phase TEST: 1 layers" in captured.out
    assert "not listed" not in captured.out
    assert captured.err.count("unknown bottom blob 'data'") == 2


# a block meant to be pasted into a bigger net (NormFace's, AM-Softmax's prototxt/ files):
# its first layer reads a blob nothing here makes; the second makes one only in place
PIECE = """layer { name: "norm" type: "Normalize" bottom: "feat" top: "normed" }
layer { name: "bn" type: "BatchNorm" bottom: "map" top: "map" }
layer { name: "ip" type: "InnerProduct" bottom: "normed" top: "ip"
        inner_product_param { num_output: 3 } }
"""


def test_info_piece_of_a_net_says_how_to_build_it(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "piece.prototxt", PIECE)
    assert main(["info", str(src), "--phase", "TEST"]) == 1
    err = capsys.readouterr().err
    assert f"{src}:1:40: error: layer 'norm' (Normalize) in the TEST phase: unknown bottom " \
           "blob 'feat'" in err
    assert "paste it after the layer that makes 'feat'" in err
    assert 'declare the blob at the top (input: "feat" input_shape' in err
    assert "or give its shape (--input-shape feat=N,C,...)" in err
    # --input-shape for a blob the file only reads declares it as an input; the other one
    # is still missing, with the same hint
    assert main(["info", str(src), "--input-shape", "feat=2,4"]) == 1
    err = capsys.readouterr().err
    assert "unknown bottom blob 'map'" in err and "--input-shape map=N,C,..." in err
    assert main(["info", str(src), "--input-shape", "feat=2,4",
                 "--input-shape", "map=2,1,2,2"]) == 0
    out = capsys.readouterr().out
    assert "total: 18 params" in out  # ip's 15, bn's 3
    (row,) = [line for line in out.splitlines() if " Input " in line]
    assert row.split()[:3] == ["0", "input", "Input"] and "feat, map" in row
    assert "2x4, 2x1x2x2" in row
    assert main(["info", str(src), "--input-shape", "normd=2,4"]) == 2  # a typo, as before
    assert "the net has no blob named 'normd'" in capsys.readouterr().err
    # declared as the hint says, the piece builds
    assert main(["info", str(_write(tmp_path / "whole.prototxt",
                                     'input: "feat" input_shape { dim: 2 dim: 4 }\n'
                                     'input: "map" input_shape { dim: 2 dim: 1 dim: 2 dim: 2 }'
                                     "\n" + PIECE))]) == 0
    assert "total: 18 params" in capsys.readouterr().out  # ip's 15, bn's 3


def test_piece_of_a_net_runs_given_its_shapes(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """test, time and export take --input-shape for the blobs a piece only reads."""
    src = str(_write(tmp_path / "piece.prototxt", PIECE))
    shapes = ["--input-shape", "feat=2,4", "--input-shape", "map=2,1,2,2"]
    assert main(["test", "-model", src, "-iterations", "1", *shapes]) == 0
    assert main(["time", "-model", src, "-iterations", "1", *shapes]) == 0
    assert main(["export", src, "-o", str(tmp_path / "p.onnx"), *shapes]) == 0
    assert (tmp_path / "p.onnx").is_file()
    capsys.readouterr()
    assert main(["test", "-model", src, "-iterations", "1", shapes[0], shapes[1]]) == 1
    assert "--input-shape map=N,C,..." in capsys.readouterr().err


def test_info_caffemodel_and_weights(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    net = caffe_pb2.NetParameter(name="tt")
    text_format.Merge(TRAIN_TEST, net)
    weights = tmp_path / "tt.caffemodel"
    write_caffemodel_arrays(weights, net, {"ip": [np.zeros((2, 4), np.float32),
                                                 np.zeros(2, np.float32)]})
    assert main(["info", str(weights), "--phase", "TEST"]) == 0
    out = capsys.readouterr().out
    assert "(caffemodel)" in out and "blobs" in out
    ip_line = next(line for line in out.splitlines() if " ip " in line)
    assert ip_line.rstrip().endswith("2x4, 2")
    src = _write(tmp_path / "tt.prototxt", TRAIN_TEST)
    assert main(["info", str(src), "-weights", str(weights), "--phase", "TRAIN"]) == 0
    assert "2x4, 2" in capsys.readouterr().out


@pytest.mark.shared
def test_info_v1_caffemodel(capsys: pytest.CaptureFixture[str]) -> None:
    src = need_shared(CORPUS / "pl8787__exp_caffe@932c88a/examples/mnist/lenet_iter_10000")
    assert main(["info", str(src)]) == 0
    out = capsys.readouterr().out
    assert "InnerProduct" in out and "1x1x500x800, 1x1x1x500" in out


def test_python_m_help() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "caffe2torch", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: caffe2torch" in proc.stdout and "info" in proc.stdout


def test_info_builds_python_layers_when_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # the refusal's hint names --allow-python-layers: info takes it, as time and export do
    (tmp_path / "c2t_info_double.py").write_text(
        "import caffe\n\n"
        "class Double(caffe.Layer):\n"
        "    def reshape(self, bottom, top):\n"
        "        top[0].reshape(*bottom[0].data.shape)\n\n"
        "    def forward(self, bottom, top):\n"
        "        top[0].data[...] = 2 * bottom[0].data\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    src = _write(tmp_path / "py.prototxt",
                 'input: "x" input_shape { dim: 2 dim: 3 }\n'
                 'layer { name: "d" type: "Python" bottom: "x" top: "d" '
                 'python_param { module: "c2t_info_double" layer: "Double" } }\n'
                 'layer { name: "ip" type: "InnerProduct" bottom: "d" top: "ip" '
                 'inner_product_param { num_output: 4 } }\n')
    assert main(["info", str(src)]) == 1
    assert "--allow-python-layers" in capsys.readouterr().err
    assert main(["info", str(src), "--allow-python-layers"]) == 0
    out = capsys.readouterr().out
    assert "total: 16 params" in out and "2x4" in out
