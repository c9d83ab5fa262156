"""The linter end to end: the seed answers, weights, upgrade refusals, --fix, the CLI, and
every corpus file."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

import caffe2torch
from caffe2torch.cli.main import main
from caffe2torch.io.text import read_net_text
from caffe2torch.lint.context import Options
from caffe2torch.lint.engine import lint_file, lint_text
from caffe2torch.lint.fix import apply_edits, fix_edits
from caffe2torch.proto import caffe_pb2
from tests.conftest import CORPUS, need_shared

FIXTURES = Path(__file__).parent / "fixtures"


def codes(diags) -> list[tuple[int, str]]:
    return sorted((d.line, d.code) for d in diags)


# ---------------------------------------------------------------------------- seeds


def test_seed_mixed_snippet_every_defect_with_line_and_fix(seeds_dir: Path) -> None:
    path = seeds_dir / "answer_concat_softmax_mixed.prototxt"
    diags = caffe2torch.lint(path)
    by_code = {(d.line, d.code): d for d in diags}
    # the V1 block mixed with V2 blocks: both line ranges, the upgrade command, a fix
    mixed = by_code[(8, "C2T106")]
    assert "lines 1-7" in mixed.message and "lines 8-45" in mixed.message
    assert "caffe2torch upgrade" in mixed.help and mixed.fix is not None
    # enum types inside layer {}: the quoted V2 name, each with a fix
    for line, v2 in ((10, "InnerProduct"), (31, "Accuracy"), (41, "SoftmaxWithLoss")):
        d = by_code[(line, "C2T103")]
        assert f'"{v2}"' in d.help and d.fix is not None
    # the snippet reads blobs made elsewhere: named, with the phase
    unknown = {(d.line, d.message.split("'")[3]) for d in diags if d.code == "C2T201"}
    assert unknown == {(4, "fc7"), (5, "fc7_p"), (33, "label"), (43, "label")}
    assert {d.code for d in diags} == {"C2T106", "C2T103", "C2T201"}
    # the fixes turn it into the corrected answer
    text = path.read_text()
    fixed, _ = apply_edits(text, fix_edits(diags))
    want = read_net_text((seeds_dir / "answer_concat_softmax_v2.prototxt").read_text())
    assert read_net_text(fixed) == want
    assert "# concatenate fc7 and fc7_p along channel axis" in fixed


def test_seed_v2_answer_appended_to_v1_net(seeds_dir: Path, tmp_path: Path) -> None:
    text = ((seeds_dir / "siamese_imagenet_v1.prototxt").read_text()
            + (seeds_dir / "answer_concat_softmax_v2.prototxt").read_text())
    diags = lint_text(text, "siamese_plus_answer.prototxt")
    mixed = [d for d in diags if d.code == "C2T106"]
    assert len(mixed) == 1 and mixed[0].line == 615
    assert "lines 2-614" in mixed[0].message and "lines 615-659" in mixed[0].message
    assert mixed[0].fix is not None
    got = {(d.line, d.code) for d in diags}
    # checking went on past the mix: the two "loss" layers both write top "loss", and the
    # embeddings reach ContrastiveLoss through ReLU and Dropout
    assert (658, "C2T202") in got
    assert {(314, "C2T324"), (320, "C2T324"), (589, "C2T324"), (595, "C2T324")} <= got
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    fixed, _ = apply_edits(text, fix_edits(diags))
    assert "layers {" not in fixed
    net = read_net_text(fixed)
    assert [lp.type for lp in net.layer][-4:] == ["Concat", "InnerProduct", "Accuracy",
                                                  "SoftmaxWithLoss"]
    assert net.layer[4].param[0].lr_mult == 1 and net.layer[4].param[1].decay_mult == 0


# ---------------------------------------------------------------------------- upgrade codes


def test_upgrade_refused_and_problems() -> None:
    refused = lint_text('layers { layer { name: "lc" type: "locally_connected" } }')
    assert [d.code for d in refused] == ["C2T108"]
    logging.disable(logging.WARNING)
    try:
        problem = lint_text('input: "x"\ninput_dim: 1\ninput_dim: 1\ninput_dim: 2\n'
                            'input_dim: 2\nlayers {\n  layer {\n    name: "r"\n    '
                            'type: "relu"\n    num_output: 3\n  }\n  bottom: "x"\n  top: "x"\n}\n')
    finally:
        logging.disable(logging.NOTSET)
    assert "C2T109" in {d.code for d in problem}


# ---------------------------------------------------------------------------- weights


def _caffemodel(path: Path, rows: int, cols: int) -> None:
    net = caffe_pb2.NetParameter()
    lp = net.layer.add(name="fc", type="InnerProduct")
    w = lp.blobs.add()
    w.shape.dim.extend([rows, cols])
    w.data.extend([0.0] * rows * cols)
    b = lp.blobs.add()
    b.shape.dim.extend([rows])
    b.data.extend([0.0] * rows)
    path.write_bytes(net.SerializeToString())


NET = """
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 4 } }
"""


def test_weights_shape_mismatch(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.caffemodel", tmp_path / "bad.caffemodel"
    _caffemodel(good, 4, 18)
    _caffemodel(bad, 4, 12)
    assert lint_text(NET, "n.prototxt", Options(weights=str(good))) == []
    diags = lint_text(NET, "n.prototxt", Options(weights=str(bad)))
    assert [d.code for d in diags] == ["C2T401"]
    assert "4x18" in diags[0].message and "4x12" in diags[0].message
    missing = lint_text(NET, "n.prototxt", Options(weights=str(tmp_path / "none")))
    assert [d.code for d in missing] == ["C2T402"]


# ---------------------------------------------------------------------------- fixes


def test_fix_v1_net_keeps_comments_and_meaning() -> None:
    text = (FIXTURES / "legacy_v1.prototxt").read_text().replace(
        "  propagate_down: true  # E: C2T107\n", "")
    before = read_net_text(text)
    fixed, n = apply_edits(text, fix_edits(lint_text(text)))
    assert n > 0 and "layers" not in fixed and "}  # keep this comment" in fixed
    assert "blobs_lr" not in fixed and "transform_param" in fixed
    assert "# Portability: a V1 net" in fixed
    assert read_net_text(fixed) == before
    assert lint_text(fixed) == []


def test_fix_v1_corpus_nets_upgrade_like_caffe(corpus_dir: Path) -> None:
    """--fix on every V1 net of the corpus gives the net Caffe's own upgrade gives."""
    rows = list(csv.DictReader((corpus_dir / "MANIFEST.tsv").open(), delimiter="\t"))
    checked = 0
    logging.disable(logging.WARNING)
    try:
        for row in rows:
            if row["format"] != "V1":
                continue
            path = corpus_dir / row["path"]
            text = path.read_text(errors="replace")
            diags = lint_text(text, str(path))
            fix = [d for d in diags if d.code == "C2T604" and d.fix is not None]
            if not fix:
                continue
            fixed, _ = apply_edits(text, list(fix[0].fix.edits))
            assert "layers {" not in fixed, row["path"]
            assert read_net_text(fixed) == read_net_text(text), row["path"]
            checked += 1
    finally:
        logging.disable(logging.NOTSET)
    assert checked >= 20


def test_unknown_field_rename_fix() -> None:
    text = ('layer { name: "c" type: "Convolution" bottom: "d" top: "c"\n'
            '  convolution_param { num_output: 2 kernal_size: 3 } }\n')
    diags = lint_text(text, options=Options(select=["C2T101"]))
    assert [d.code for d in diags] == ["C2T101"] and diags[0].fix is not None
    fixed, _ = apply_edits(text, fix_edits(diags))
    assert "kernel_size: 3" in fixed


# ---------------------------------------------------------------------------- CLI


def test_cli_exit_codes_and_formats(tmp_path: Path, capsys) -> None:
    clean = FIXTURES / "solver_ok.prototxt"
    assert main(["lint", str(clean)]) == 0
    assert main(["lint", str(FIXTURES / "graph.prototxt"), "--format", "concise"]) == 1
    out = capsys.readouterr().out
    assert "graph.prototxt:22:3: error[C2T201] layer 'conv1' reads bottom 'dta'" in out
    assert main(["lint", str(tmp_path / "missing.prototxt")]) == 2
    assert main(["lint"]) == 2
    capsys.readouterr()
    assert main(["lint", str(FIXTURES / "graph.prototxt"), "--format", "full"]) == 1
    full = capsys.readouterr().out
    assert ' 22 |   bottom: "dta"  # E: C2T201' in full and "help: did you mean \"data\"?" in full
    assert main(["lint", str(FIXTURES / "graph.prototxt"), "--format", "json",
                 "--select", "graph", "--ignore", "C2T205,C2T206"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {d["code"] for d in data} == {"C2T201", "C2T202", "C2T203", "C2T204"}
    assert main(["lint", str(FIXTURES / "layer.prototxt"), "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]


def test_cli_explain(capsys) -> None:
    assert main(["lint", "--explain", "c2t201"]) == 0
    assert "Unknown bottom blob" in capsys.readouterr().out
    assert main(["lint", "--explain", "C2T999"]) == 2


def test_cli_fix_rewrites_file(tmp_path: Path, seeds_dir: Path) -> None:
    path = tmp_path / "mixed.prototxt"
    path.write_text((seeds_dir / "answer_concat_softmax_mixed.prototxt").read_text())
    assert main(["lint", "--fix", "--ignore", "C2T201", str(path)]) == 0
    text = path.read_text()
    assert "layers" not in text and 'type: "SoftmaxWithLoss"' in text


# ---------------------------------------------------------------------------- corpus


@pytest.mark.slow
def test_corpus_lints_without_crash() -> None:
    corpus = need_shared(CORPUS)
    rows = list(csv.DictReader((corpus / "MANIFEST.tsv").open(), delimiter="\t"))
    logging.disable(logging.WARNING)
    try:
        n = 0
        for row in rows:
            if "binary" in row["format"] or row["format"] == "format":
                continue
            diags = lint_file(corpus / row["path"])
            assert all(d.line >= 1 and d.col >= 1 for d in diags), row["path"]
            n += 1
    finally:
        logging.disable(logging.NOTSET)
    assert n > 200
