"""Mistakes users coming from Caffe make with their files and flags, each through the
command line (``main([...])``): the message names the file (and line) and says what to do,
and no pair falls out of step. Each test says what BVLC Caffe does with the same input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from caffe2torch.cli.main import main
from tests.support.cli_project import make_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _snapshot(project: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _, _ = run(capsys, "train", "-solver", "solver.prototxt", "-q")
    assert code == 0
    return project / "out" / "tiny_iter_2.caffemodel"


# weights ------------------------------------------------------------------------------


def test_weights_of_another_net_say_nothing_was_copied(project: Path, capsys) -> None:
    """Caffe copies by layer name and only logs "Ignoring source layer X" at INFO: weights
    of a net whose layers are named differently leave every filler in place, silently."""
    weights = _snapshot(project, capsys)
    renamed = (project / "train_test.prototxt").read_text().replace('"feat', '"emb')
    (project / "renamed.prototxt").write_text(renamed)
    (project / "solver2.prototxt").write_text(
        (project / "solver.prototxt").read_text().replace("train_test", "renamed")
        .replace("out/tiny", "out/renamed"))
    code, _, err = run(capsys, "train", "-solver", "solver2.prototxt", "-weights", str(weights))
    assert code == 0
    assert "net.cpp:678] Ignoring source layer feat" in err
    assert re.search(r"^W.* no layer of .*tiny_iter_2.caffemodel matches a layer of this net "
                     r"by name: nothing was copied", err, re.M)
    assert "the net's layers with weights: emb, emb_p" in err
    code, _, err = run(capsys, "test", "-q", "-model", "renamed.prototxt", "-weights",
                       str(weights), "-iterations", "1")
    assert code == 0  # as Caffe: a warning, not a refusal
    assert "caffe2torch test: warning: no layer of" in err
    # the same weights on their own net: copied, no warning
    code, _, err = run(capsys, "train", "-solver", "solver.prototxt", "-weights", str(weights))
    assert code == 0 and "nothing was copied" not in err


def test_snapshot_and_weights_swapped_name_the_right_flag(project: Path, capsys) -> None:
    """`-snapshot x.caffemodel`: Caffe stops with "Incorrect length of history blobs (0 vs.
    2)"; `-weights x.solverstate`: "Failed to parse NetParameter file". Both say which file
    goes where instead."""
    weights = _snapshot(project, capsys)
    code, _, err = run(capsys, "train", "-solver", "solver.prototxt",
                       "-snapshot", "out/tiny_iter_2.caffemodel", "-iterations", "3")
    assert code == 2
    assert ("out/tiny_iter_2.caffemodel: error: this is a caffemodel (a net's weights), not a "
            "solver state\n  help: resume with -snapshot out/tiny_iter_2.solverstate") in err
    for verb in (["train", "-solver", "solver.prototxt"],
                 ["test", "-model", "train_test.prototxt"]):
        code, _, err = run(capsys, *verb, "-weights", "out/tiny_iter_2.solverstate")
        assert code == 2
        assert ("tiny_iter_2.solverstate: error: this is a solver state (.solverstate), not a "
                "caffemodel (its weights are in 'out/tiny_iter_2.caffemodel')") in err
    assert weights.exists()  # the right files still work
    code, _, _ = run(capsys, "train", "-solver", "solver.prototxt", "-q",
                     "-snapshot", "out/tiny_iter_2.solverstate", "-iterations", "3")
    assert code == 0


def test_an_hdf5_caffemodel_as_the_snapshot(project: Path, capsys) -> None:
    (project / "solver_h5.prototxt").write_text(
        (project / "solver.prototxt").read_text() + 'snapshot_format: HDF5\n')
    code, _, _ = run(capsys, "train", "-solver", "solver_h5.prototxt", "-q")
    assert code == 0
    code, _, err = run(capsys, "train", "-solver", "solver_h5.prototxt",
                       "-snapshot", "out/tiny_iter_2.caffemodel.h5")
    assert code == 2
    assert "this is an HDF5 caffemodel (a net's weights), not a solver state" in err
