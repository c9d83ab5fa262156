"""The exit-code contract of every verb, as the README states it: 0 ok, 1 findings or a
failed run, 2 usage or I/O error; and whatever the input, no Python traceback (nor our
last-resort "internal error") reaches the user."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

from caffe2torch.cli.main import build_parser, main
from tests.support.cli_project import make_project

OK, FAILED, USAGE = 0, 1, 2

V1_NET = """name: "v1"
input: "data"
input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
layers { name: "ip" type: INNER_PRODUCT bottom: "data" top: "ip"
  inner_product_param { num_output: 2 } }
"""
MIXED_NET = V1_NET + 'layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }\n'
CAFFE_LOG = """I1204 10:00:00.000000  1 solver.cpp:289] Solving tiny
I1204 10:00:00.100000  1 solver.cpp:218] Iteration 0, loss = 0.5
I1204 10:00:00.100000  1 solver.cpp:237]     Train net output #0: loss = 0.5
I1204 10:00:01.100000  1 solver.cpp:218] Iteration 10, loss = 0.25
I1204 10:00:01.100000  1 solver.cpp:237]     Train net output #0: loss = 0.25
"""
HAS_MPL = importlib.util.find_spec("matplotlib") is not None

# (verb, arguments, exit code); paths are relative to the project folder
CASES: list[tuple[str, list[str], int]] = [
    ("upgrade", ["v1.prototxt"], OK),
    ("upgrade", ["v1.prototxt", "a.prototxt", "-o", "b.prototxt"], USAGE),
    ("upgrade", ["missing.prototxt"], USAGE),
    ("upgrade", ["mixed.prototxt"], FAILED),
    ("info", ["deploy.prototxt"], OK),
    ("info", ["deploy.caffemodel"], OK),
    ("info", ["missing.prototxt"], USAGE),
    ("info", ["solver.prototxt"], USAGE),
    ("info", ["broken.prototxt"], FAILED),
    ("info", ["deploy.prototxt", "--input-shape", "data=1,x,8,8"], USAGE),
    ("lint", ["deploy.prototxt"], OK),
    ("lint", ["broken.prototxt"], FAILED),
    ("lint", ["missing.prototxt"], USAGE),
    ("lint", ["deploy.caffemodel"], USAGE),
    ("lint", [], USAGE),
    ("lint", ["--explain", "C2T999"], USAGE),
    ("demo", ["--iterations", "0"], USAGE),
    ("export", ["deploy.prototxt", "-w", "deploy.caffemodel", "-o", "m.onnx"], OK),
    ("export", ["missing.prototxt", "-o", "m.onnx"], USAGE),
    ("export", ["solver.prototxt", "-o", "m.onnx"], USAGE),
    ("export", ["broken.prototxt", "-o", "m.onnx"], FAILED),
    ("export", ["deploy.prototxt", "-o", "m.onnx", "--batch", "x"], USAGE),
    ("export", ["deploy.prototxt", "-o", "m.onnx", "--input-shape", "nope=1,1,8,8"], USAGE),
    ("convert", ["deploy.prototxt", "-w", "deploy.caffemodel", "-o", "net.py"], OK),
    ("convert", ["missing.prototxt", "-o", "net.py"], USAGE),
    ("convert", ["broken.prototxt", "-o", "net.py"], FAILED),
    ("convert", ["deploy.prototxt"], USAGE),  # -o missing
    ("draw", ["deploy.prototxt", "-o", "net.svg", "--layout", "builtin"], OK),
    ("draw", ["deploy.prototxt", "-o", "net.xyz"], USAGE),
    ("draw", ["missing.prototxt", "-o", "net.svg"], USAGE),
    ("draw", ["deploy.prototxt", "-o", "net.svg", "--input-shape", "data=1,,8,8"], USAGE),
    ("train", ["-solver", "solver.prototxt", "-q"], OK),
    ("train", ["-solver", "missing.prototxt"], USAGE),
    ("train", ["-solver", "solver_missing_list.prototxt", "-q"], USAGE),
    ("train", ["-solver", "solver_broken.prototxt", "-q"], FAILED),
    ("train", ["-solver", "solver.prototxt", "-weights", "w", "-snapshot", "s"], USAGE),
    ("train", ["-solver", "solver.prototxt", "-gpu", "x"], USAGE),
    ("test", ["-model", "train_test.prototxt", "-iterations", "1", "-q"], OK),
    ("test", ["-model", "missing.prototxt"], USAGE),
    ("test", ["-model", "tt_missing_list.prototxt", "-iterations", "1"], USAGE),
    ("test", ["-model", "broken.prototxt", "-iterations", "1"], FAILED),
    ("test", ["-model", "deploy.prototxt", "--roc", "roc.png"], USAGE),
    ("test", ["-model", "deploy.prototxt", "--pairs", "train1.txt", "missing.txt"], USAGE),
    ("time", ["-model", "deploy.prototxt", "-iterations", "1"], OK),
    ("time", ["-model", "missing.prototxt"], USAGE),
    ("time", ["-model", "broken.prototxt", "-iterations", "1"], FAILED),
    ("time", ["-model", "deploy.prototxt", "-iterations", "0"], USAGE),
    ("device_query", [], OK),
    ("device_query", ["-gpu", "x"], USAGE),
    ("device_query", ["-gpu", "99"], FAILED),
    ("plot", ["caffe.log", "-o", "curves.png"], OK),
    ("plot", ["empty.log"], FAILED),
    ("plot", ["missing.log"], USAGE),
    ("pairs", ["images", "--out-dir", "lists"], OK),
    ("pairs", ["no_such_folder"], USAGE),
    ("pairs", ["images", "--count", "0"], USAGE),
    ("triplets", ["images", "--out-dir", "lists"], OK),
    ("triplets", ["no_such_folder"], USAGE),
    ("triplets", ["empty_dir"], USAGE),
    # a script's own exit code passes through; its uncaught exception (exit 1, with the
    # script's traceback, as Python prints it) is tested in tests/pycaffe/test_run_verb.py
    ("run", ["forward.py", "deploy.prototxt"], OK),
    ("run", ["forward.py", "missing.prototxt"], USAGE),
    ("run", ["forward.py", "broken.prototxt"], FAILED),
    ("run", ["missing.py"], USAGE),
    ("compare", ["deploy.prototxt", "blobs.npz", "-w", "deploy.caffemodel"], OK),
    ("compare", ["deploy.prototxt", "blobs_off.npz", "-w", "deploy.caffemodel"], FAILED),
    ("compare", ["deploy.prototxt", "-w", "deploy.caffemodel"], USAGE),
    ("compare", ["deploy.prototxt", "missing.npz"], USAGE),
    ("compare", ["missing.prototxt", "blobs.npz"], USAGE),
]

FORWARD_SCRIPT = """import sys
import caffe
net = caffe.Net(sys.argv[1], caffe.TEST)
net.forward()
print({name: blob.data.shape for name, blob in net.blobs.items()})
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("contract"))
    (root / "v1.prototxt").write_text(V1_NET)
    (root / "mixed.prototxt").write_text(MIXED_NET)
    text = (root / "train_test.prototxt").read_text()
    (root / "tt_missing_list.prototxt").write_text(text.replace("train1.txt", "gone1.txt"))
    solver = (root / "solver.prototxt").read_text()
    (root / "solver_missing_list.prototxt").write_text(
        solver.replace("train_test.prototxt", "tt_missing_list.prototxt"))
    (root / "solver_broken.prototxt").write_text(
        solver.replace("train_test.prototxt", "broken.prototxt"))
    (root / "caffe.log").write_text(CAFFE_LOG)
    (root / "empty.log").write_text("")
    (root / "empty_dir").mkdir()
    (root / "forward.py").write_text(FORWARD_SCRIPT)
    _write_blob_dumps(root)
    return root


def _write_blob_dumps(root: Path) -> None:
    """What real Caffe's dump of deploy.prototxt would hold: our own blobs (compare passes),
    and the same with the last blob changed (compare names its layer)."""
    import numpy as np

    import caffe2torch as c2t

    net = c2t.load_net(root / "deploy.prototxt", weights=root / "deploy.caffemodel")
    data = np.random.default_rng(0).uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
    out = net(data=data)
    blobs = {"data": data, "feat": out["feat"].detach().numpy()}
    np.savez(root / "blobs.npz", **blobs)
    np.savez(root / "blobs_off.npz", **{**blobs, "feat": blobs["feat"] + 1.0})


def _id(case: tuple[str, list[str], int]) -> str:
    verb, args, code = case
    return f"{verb}-{code}-{'_'.join(a.lstrip('-') for a in args)[:40] or 'noargs'}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_exit_code(case: tuple[str, list[str], int], project: Path,
                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                   ) -> None:
    verb, args, code = case
    if verb == "plot" and code == OK and not HAS_MPL:
        pytest.skip("plot draws with matplotlib")
    monkeypatch.chdir(project)
    assert main([verb, *args]) == code
    out, err = capsys.readouterr()
    for stream in (out, err):
        assert "Traceback" not in stream
        assert "internal error" not in stream
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", stream)
    if code != OK:
        assert "error" in err.lower() or "usage:" in err  # a failure says why, on stderr


ODD_INPUT_COMMANDS = [
    ["info", "{f}"], ["lint", "{f}"], ["upgrade", "{f}"], ["draw", "{f}", "-o", "x.svg"],
    ["export", "{f}", "-o", "x.onnx"], ["convert", "{f}", "-o", "x.py"],
    ["test", "-model", "{f}", "-iterations", "1", "-q"],
    ["time", "-model", "{f}", "-iterations", "1"], ["train", "-solver", "{f}", "-q"],
    ["plot", "{f}"], ["pairs", "{f}", "--out-dir", "lists"],
    ["triplets", "{f}", "--out-dir", "lists"],
    ["test", "-model", "deploy.prototxt", "-weights", "{f}", "-iterations", "1", "-q"],
    ["export", "deploy.prototxt", "-w", "{f}", "-o", "x.onnx"],
    ["info", "deploy.prototxt", "--weights", "{f}"],
    ["train", "-solver", "solver.prototxt", "-weights", "{f}", "-q"],
    ["train", "-solver", "solver.prototxt", "-snapshot", "{f}", "-q"],
]
ODD_INPUTS = ["a_folder", "random.bin", "v1.prototxt"]


@pytest.mark.parametrize("odd", ODD_INPUTS)
@pytest.mark.parametrize("command", ODD_INPUT_COMMANDS,
                         ids=["-".join(c[:2]).replace("{f}", "F") + ("-w" if "-w" in c or
                              "-weights" in c or "--weights" in c else "") +
                              ("-s" if "-snapshot" in c else "") for c in ODD_INPUT_COMMANDS])
def test_odd_input_is_refused_with_a_message(command: list[str], odd: str, project: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A folder, random bytes, or a net where weights, a solver or a list go: exit 1 or 2
    with an error message, never a traceback."""
    monkeypatch.chdir(project)
    (project / "a_folder").mkdir(exist_ok=True)
    (project / "random.bin").write_bytes(bytes(range(256)) * 2)
    argv = [a.replace("{f}", odd) for a in command]
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in out + err
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", out + err)
    if code == OK:  # only what is legitimately fine: a V1 net upgraded, linted, listed...
        assert odd == "v1.prototxt" and argv[0] in {"info", "lint", "upgrade", "draw",
                                                    "export", "convert", "time", "test"}
    else:
        assert code in (FAILED, USAGE) and "error" in err.lower()


def test_every_verb_is_covered() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    covered = {verb for verb, _, _ in CASES}
    assert covered == set(sub.choices)
    # each verb has a success case and a usage/I-O case
    for verb in sub.choices:
        codes = {code for v, _, code in CASES if v == verb}
        assert USAGE in codes, verb
        assert OK in codes or verb == "demo", verb  # demo's success: tests/test_cli_first_hour.py


def test_unexpected_exception_is_reported_not_raised(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A bug of ours still ends in a short message and exit 1, not a traceback."""
    from caffe2torch.cli import device_query

    def boom(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(device_query, "run", boom)
    monkeypatch.delenv("CAFFE2TORCH_DEBUG", raising=False)
    assert main(["device_query"]) == FAILED
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: division by zero" in err
    assert "CAFFE2TORCH_DEBUG=1" in err and "Traceback" not in err
