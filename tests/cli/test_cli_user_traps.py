"""Mistakes users coming from Caffe make with their files and flags, each through the
command line (``main([...])``): the message names the file (and line) and says what to do,
and no pair falls out of step. Each test says what BVLC Caffe does with the same input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.cli_project import run_main as run


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
    # -q drops the log, not the warning that the run trains from the fillers (once)
    code, _, err = run(capsys, "train", "-q", "-solver", "solver2.prototxt", "-weights",
                       str(weights))
    assert code == 0
    assert "Ignoring source layer" not in err
    assert err.count("caffe2torch train: warning: no layer of") == 1
    assert "nothing was copied, the net keeps its fillers' values" in err
    code, _, err = run(capsys, "test", "-q", "-model", "renamed.prototxt", "-weights",
                       str(weights), "-iterations", "1")
    assert code == 0  # as Caffe: a warning, not a refusal
    assert "caffe2torch test: warning: no layer of" in err
    # the same weights on their own net: copied, no warning
    for quiet in ([], ["-q"]):
        code, _, err = run(capsys, "train", "-solver", "solver.prototxt", "-weights",
                           str(weights), *quiet)
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


# list files and images ----------------------------------------------------------------


def _train(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run(capsys, "train", "-solver", "solver.prototxt", "-q")
    return code, err


def test_a_list_saved_by_a_windows_editor_trains(project: Path, capsys) -> None:
    """CRLF: Caffe's getline keeps the CR and atoi stops at it. A UTF-8 BOM: Caffe takes it
    into the first file name and stops; here it is dropped, as in a prototxt."""
    for name in ("train1.txt", "train2.txt"):
        text = (project / name).read_text()
        (project / name).write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert _train(capsys)[0] == 0
    code, out, _ = run(capsys, "lint", "train_test.prototxt", "--check-data")
    assert code == 0, out


@pytest.mark.parametrize("edit,where,message,hint", [
    (lambda t: t.replace(" 1\n", " 1  \n", 1), "train1.txt:1:", "is not a label: ''",
     "the line ends in spaces or tabs: remove them"),
    (lambda t: t.replace(" 0\n", " 0.5\n", 1), "train1.txt:2:", "label '0.5' is not an "
     "integer: Caffe's ImageData reads it with atoi as 0", "real-valued targets"),
    (lambda t: t.replace("images/a/0.png", "images\\a\\0.png"), "train1.txt:1:",
     "could not read image 'images\\\\a\\\\0.png': the file is not there",
     "write 'images/a/0.png' (that file exists)"),
    (lambda t: t.replace("images/a/0.png", "C:\\imgs\\a0.png"), "train1.txt:1:",
     "the file is not there", "the name is a Windows path"),
], ids=["trailing-spaces", "fraction-label", "backslashes", "windows-drive"])
def test_list_file_mistakes_name_the_line_and_the_fix(project: Path, capsys, edit, where,
                                                      message, hint) -> None:
    lines = project / "train1.txt"
    lines.write_text(edit(lines.read_text()), encoding="utf-8")
    code, err = _train(capsys)
    assert code == 2
    assert err.startswith(where) and message in err and hint in err.split("help: ")[1]


def test_a_whole_label_written_as_a_float_is_read_as_caffe_reads_it(project: Path,
                                                                   capsys) -> None:
    for name in ("train1.txt", "train2.txt"):
        text = (project / name).read_text()
        (project / name).write_text(text.replace(" 1\n", " 1.0\n").replace(" 0\n", " 0.0\n"))
    assert _train(capsys)[0] == 0


def test_missing_and_undecodable_images_are_told_apart(project: Path, capsys) -> None:
    (project / "images" / "c" / "1.png").unlink()  # train1.txt line 3
    code, err = _train(capsys)
    assert code == 2
    assert err.startswith("train1.txt:3: error: could not read image 'images/c/1.png': the "
                          "file is not there\n  help: looked for " +
                          str(project / "images" / "c" / "1.png"))
    (project / "images" / "c" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, err = _train(capsys)
    assert code == 2
    assert err.startswith("train1.txt:3: error: could not read image 'images/c/1.png' (18 "
                          "bytes): OpenCV cannot decode it")


def test_pair_lists_of_different_lengths_say_how_to_write_them(project: Path,
                                                              capsys) -> None:
    """Caffe reads each list on its own: the pairs fall out of step at the shorter's wrap."""
    lines = (project / "train2.txt").read_text().splitlines(keepends=True)
    (project / "train2.txt").write_text("".join(lines[:-1]))
    code, err = _train(capsys)
    assert code == 2
    assert err.startswith("train2.txt: error: paired data layers differ in length: "
                          "'pair_data' reads 6 rows from 'train1.txt', 'pair_data_p' reads 5")
    assert "`caffe2torch pairs`" in err


@pytest.mark.parametrize("shape,hint", [
    ((1, 3, 8, 8), "the images are read with 1 channel(s) and the mean has 3: set is_color"),
    ((1, 1, 10, 10), "compute the mean over images of 8x8"),
], ids=["channels", "size"])
def test_a_mean_file_of_another_shape_names_the_file(project: Path, capsys, shape,
                                                    hint) -> None:
    import numpy as np

    from caffe2torch.io.binary import array_to_blob

    (project / "mean.binaryproto").write_bytes(
        array_to_blob(np.zeros(shape, np.float32)).SerializeToString())
    net = project / "train_test.prototxt"
    net.write_text(net.read_text().replace(
        "scale: 0.00390625 }", 'scale: 0.00390625 mean_file: "mean.binaryproto" }'))
    code, err = _train(capsys)
    assert code == 2
    c, h = shape[1], shape[2]
    assert err.startswith(f"mean.binaryproto: error: the mean is {c}x{h}x{h} but the image is "
                          "1x8x8 (before cropping; layer 'pair_data': train1.txt:1)")
    assert f"help: {hint}" in err


# command line --------------------------------------------------------------------------


@pytest.mark.parametrize("argv,want", [
    (["train", "solver.prototxt", "-iterations", "3"],
     "caffe2torch train: error: the solver is given with -solver, as in Caffe: "
     "caffe2torch train -solver solver.prototxt -iterations 3"),
    (["test", "train_test.prototxt", "-weights", "w.caffemodel"],
     "caffe2torch test: error: the model is given with -model, as in Caffe: "
     "caffe2torch test -model train_test.prototxt -weights w.caffemodel"),
    (["time", "deploy.prototxt"], "caffe2torch time: error: the model is given with -model"),
], ids=["train", "test", "time"])
def test_a_bare_file_after_a_caffe_verb_gets_the_command_to_type(project: Path, capsys,
                                                                argv, want) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith(want)


def test_caffe_flag_spellings_in_any_order(project: Path, capsys) -> None:
    for argv in (["train", "--solver=solver.prototxt", "--iterations=1", "-q"],
                 ["train", "-iterations", "1", "-q", "-solver=solver.prototxt"]):
        assert run(capsys, *argv)[0] == 0


def test_lint_check_data_reads_lists_as_training_does(project: Path, capsys) -> None:
    """lint --check-data splits lines and reads labels with the reader's own rules: a blank
    or tab-separated line is a finding (training stops there), a label written 1.0 is 1
    (as Caffe's atoi reads it) and agrees with the other list's 1."""
    for name in ("train1.txt",):
        text = (project / name).read_text()
        (project / name).write_text(text.replace(" 1\n", " 1.0\n"))
    code, out, _ = run(capsys, "lint", "train_test.prototxt", "--check-data",
                       "--format", "concise")
    assert code == 0, out
    text = (project / "train2.txt").read_text().splitlines()
    text[2] = text[2].replace(" ", "\t")
    (project / "train2.txt").write_text("\n".join(text) + "\n\n")
    code, out, _ = run(capsys, "lint", "train_test.prototxt", "--check-data",
                       "--format", "concise")
    assert code == 1
    assert ("warning[C2T323] data layer 'pair_data_p': list 'train2.txt' line 3: no label on "
            "this line: 'images/c/2.png\\t1' (and 1 more lines)") in out
    assert "C2T322" not in out  # rows are not compared by position past a bad line


def test_train_help_says_where_it_differs_from_caffe(capsys) -> None:
    code, out, _ = run(capsys, "train", "--help")
    out = " ".join(out.split())
    assert code == 0
    assert "a missing snapshot_prefix folder is created (Caffe refuses to start)" in out
    assert "-gpu on a machine without CUDA warns and trains on the CPU (Caffe stops)" in out
    assert "a list's UTF-8 BOM is dropped" in out


def test_an_image_lost_mid_run_says_where_to_resume(project: Path, capsys) -> None:
    """Caffe dies in its prefetch thread ("Could not load ...") and says nothing of the
    run; here the error names the list line, the iteration and the snapshot to resume."""
    solver = project / "solver.prototxt"
    solver.write_text(solver.read_text().replace("max_iter: 2", "max_iter: 4")
                      .replace("test_interval: 2", "test_interval: 100") + "snapshot: 1\n")
    (project / "images" / "b" / "1.png").unlink()  # train2.txt line 4: the second batch
    code, _, err = run(capsys, "train", "-solver", "solver.prototxt", "-q")
    assert code == 2
    assert err.startswith("train2.txt:4: error: could not read image 'images/b/1.png'")
    assert err.rstrip().endswith("training stopped at iteration 1; after fixing the data, "
                                 "resume with -snapshot out/tiny_iter_1.solverstate")


def test_a_windows_net_path_in_the_solver(project: Path, capsys) -> None:
    """Caffe on Linux opens 'models\\net.prototxt' as one file name and stops."""
    (project / "models").mkdir()
    (project / "models" / "net.prototxt").write_text((project / "train_test.prototxt")
                                                     .read_text())
    solver = project / "solver.prototxt"
    solver.write_text(solver.read_text().replace('net: "train_test.prototxt"',
                                                 'net: "models\\\\net.prototxt"'))
    code, _, err = run(capsys, "train", "-solver", "solver.prototxt", "-q")
    assert code == 2
    assert err.startswith("solver.prototxt: error: the solver's net 'models\\\\net.prototxt' is "
                          "written with backslashes")
    assert 'help: write net: "models/net.prototxt"' in err


def test_scoring_a_deploy_net_says_it_runs_on_zeros(project: Path, capsys) -> None:
    """`caffe test` on a deploy net scores its Input blobs' zeros without a word."""
    code, out, err = run(capsys, "test", "-q", "-model", "deploy.prototxt", "-weights",
                         "deploy.caffemodel", "-iterations", "1")
    assert code == 0 and "feat = 0" in out
    assert ("caffe2torch test: note: no data layer feeds 'data': the net is scored on zeros, "
            "as Caffe's test does") in err
    code, _, err = run(capsys, "test", "-q", "-model", "train_test.prototxt", "-iterations", "1")
    assert code == 0 and "scored on zeros" not in err


def test_run_from_another_folder_names_where_the_lists_are(project: Path, capsys,
                                                           monkeypatch) -> None:
    """Caffe opens list files relative to where it runs: from a folder above, `test` of
    the project's net finds no list; the error says where the list is."""
    monkeypatch.chdir(project.parent)
    code, _, err = run(capsys, "test", "-q", "-model", f"{project.name}/train_test.prototxt",
                       "-iterations", "1")
    assert code == 2
    assert err.startswith("train1.txt: error: list file not found\n  help: 'train1.txt' "
                          f"exists beside the net, in {project.name}: run from that folder "
                          f"(cd {project.name})")


def test_a_missing_snapshot_lists_the_states_there(project: Path, capsys) -> None:
    _snapshot(project, capsys)
    code, _, err = run(capsys, "train", "-solver", "solver.prototxt",
                       "-snapshot", "out/tiny_iter_5.solverstate")
    assert code == 2
    assert "out/tiny_iter_5.solverstate: error: solver state file not found" in err
    assert re.search(r"help: the newest solver states there: \S*out/tiny_iter_2\.solverstate",
                     err)


def test_negative_iterations_are_refused(project: Path, capsys) -> None:
    code, _, err = run(capsys, "train", "-solver", "solver.prototxt", "-iterations", "-1")
    assert code == 2
    assert err.startswith("caffe2torch train: error: -iterations (the max_iter to train to) "
                          "must be >= 0, not -1")


def test_images_of_another_size_name_the_row(project: Path, capsys) -> None:
    """Caffe's transformer stops with "Check failed: height <= datum_height" or the like."""
    import cv2
    import numpy as np

    cv2.imwrite(str(project / "images" / "c" / "0.png"), np.zeros((10, 12), np.uint8))
    code, err = _train(capsys)
    assert code == 2
    assert ("error: layer 'pair_data_p': the images of one batch differ in size (1x8x8, "
            "1x10x12): train2.txt:2 is 1x10x12, the batch's first image 1x8x8") in err
