"""``caffe2torch test`` in metric mode and the ``pairs`` / ``triplets`` verbs, end to end
on the tiny net and images of conftest.py."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from caffe2torch.cli.main import main
from tests.metric.conftest import Work

HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _read(path):
    return [line.rsplit(" ", 1) for line in path.read_text().splitlines()]


def test_pairs_verb_then_test_metric_mode(work: Work, capsys):
    code, out, err = _run(capsys, "pairs", "images", "--out-dir", "lists", "--count", "40",
                          "--seed", "4", "--prefix", "test")
    assert code == 0 and "Wrote 40 pairs" in out
    left, right = _read(work.root / "lists/test1.txt"), _read(work.root / "lists/test2.txt")
    assert len(left) == len(right) == 40
    assert sum(int(s) for _, s in left) == 20
    for (p1, s1), (p2, s2) in zip(left, right):
        assert s1 == s2 and int(s1) == (p1.split("/")[1] == p2.split("/")[1]) and p1 != p2
    assert (work.root / "lists/classes.txt").read_text() == "0 class0\n1 class1\n"

    args = ["test", "-model", "train_test.prototxt", "-weights", "tiny.caffemodel",
            "--pairs", "lists/test1.txt", "lists/test2.txt"]
    if HAS_MPL:
        args += ["--roc", "roc.png", "--scatter", "features.png"]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    assert "Pair verification (lists/test1.txt / lists/test2.txt: 40 pairs; feature 'feat')" \
        in out
    rows = dict(line.split(None, 1) for line in out.splitlines()[1:] if line.startswith("  "))
    assert rows["accuracy"].startswith("1.0000  (20 pairs)")
    assert "ROC AUC" in out and "1.0000" in out.split("ROC AUC")[1].splitlines()[0]
    assert rows["EER"] == "0.0000"
    if HAS_MPL:
        assert (work.root / "roc.png").stat().st_size > 0
        assert (work.root / "features.png").stat().st_size > 0


def test_triplets_verb_then_test_metric_mode(work: Work, capsys):
    listed = work.write("all.txt", [f"{p} {c}" for p, c in zip(work.paths, work.labels)])
    code, out, _ = _run(capsys, "triplets", listed, "--count", "12", "--seed", "1")
    assert code == 0
    a, p, n = (_read(work.root / f"train_{role}.txt")
               for role in ("anchor", "positive", "negative"))
    assert len(a) == len(p) == len(n) == 12
    for (pa, ca), (pp, cp), (_, cn) in zip(a, p, n):
        assert ca == cp != cn and pa != pp
    code, out, err = _run(capsys, "test", "-model", "train_test.prototxt", "-weights",
                          "tiny.caffemodel", "--triplets", "train_anchor.txt",
                          "train_positive.txt", "train_negative.txt", "--batch", "5")
    assert code == 0, err
    assert "12 triplets" in out and "accuracy" in out and "class 0" in out
    assert "Every triplet of the" in out
    assert "1.0000" in out.split("accuracy")[1].splitlines()[0]


def test_retrieval_with_gallery_and_deploy_net(work: Work, capsys):
    q = work.write("q.txt", [f"{work.paths[k]} {work.labels[k]}" for k in (0, 4)])
    g = work.write("g.txt", [f"{work.paths[k]} {work.labels[k]}" for k in (1, 2, 5, 6)])
    args = ["test", "-model", "deploy.prototxt", "-weights", "tiny.caffemodel",
            "--preprocess-from", "train_test.prototxt", "--retrieval", q, "--gallery", g,
            "--ks", "1,2,9"]
    if HAS_MPL:
        args += ["--scatter", "s.png"]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    assert "2 queries, gallery g.txt" in out
    for k in (1, 2, 9):
        assert f"Recall@{k}" in out
    assert out.split("mAP")[1].split()[0] == "1.0000"
    if HAS_MPL:
        assert (work.root / "s.png").stat().st_size > 0


def test_caffe_mode_is_unchanged(work: Work, capsys):
    work.write("test1.txt", [f"{work.paths[0]} 1", f"{work.paths[1]} 0", f"{work.paths[2]} 1"])
    work.write("test2.txt", [f"{work.paths[1]} 1", f"{work.paths[5]} 0", f"{work.paths[3]} 1"])
    code, out, _ = _run(capsys, "test", "-model", "train_test.prototxt", "-weights",
                        "tiny.caffemodel", "-iterations", "2", "-q")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Loss: ") and lines[1].startswith("loss = ")
    # three similar-or-not pairs of known features: 1/(2N) sum of the contrastive terms
    f = {k: work.expected(k) for k in (0, 1, 2, 3, 5)}
    d2 = [np.sum((f[0] - f[1]) ** 2), np.sum((f[1] - f[5]) ** 2), np.sum((f[2] - f[3]) ** 2)]
    # ContrastiveLoss (not legacy): similar d^2, dissimilar max(margin - d, 0)^2, over 2N
    want = (d2[0] + max(0.0, 1 - np.sqrt(d2[1])) ** 2 + d2[2]) / 6
    assert float(lines[0].split()[1]) == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("lines1,lines2,where,message", [
    (["{a} 1", "{a} 3"], ["{b} 1", "{b} 3"], "pairs1.txt:2", "pair label 3 is not 0"),
    (["{a} 1", "{a} 0"], ["{b} 1", "{b} 1"], "pairs2.txt:2", "not aligned"),
    (["{a} 1", "{a} 0", "{a} 1"], ["{b} 1", "{b} 0"], "pairs2.txt:3", "same length"),
    (["{a} 1", "missing.png 0"], ["{b} 1", "{b} 0"], "pairs1.txt:2", "could not read image"),
    (["{a} 1", "{a}"], ["{b} 1", "{b} 0"], "pairs1.txt:2", "no label"),
], ids=["label-3", "misaligned", "lengths", "missing-image", "no-label"])
def test_bad_pair_lists_exit_2(work: Work, capsys, lines1, lines2, where, message):
    a, b = work.paths[0], work.paths[5]
    work.write("pairs1.txt", [x.format(a=a) for x in lines1])
    work.write("pairs2.txt", [x.format(b=b) for x in lines2])
    code, out, err = _run(capsys, "test", "-model", "train_test.prototxt", "-weights",
                          "tiny.caffemodel", "--pairs", "pairs1.txt", "pairs2.txt")
    assert code == 2 and out == ""
    assert err.startswith(f"{where}: error: ") and message in err


@pytest.mark.parametrize("extra,message", [
    (["--pairs", "nope1.txt", "nope2.txt"], "nope1.txt: error: list file not found"),
    (["--roc", "r.png"], "need(s) a metric mode"),
    (["--retrieval", "all.txt", "--roc", "r.png"], "--roc go with --pairs"),
    (["--pairs", "all.txt", "all.txt", "--gallery", "all.txt"], "--gallery goes with"),
    (["--retrieval", "all.txt", "--ks", "0,5"], "--ks '0,5'"),
    (["--pairs", "all.txt", "all.txt", "--val-fraction", "1.5"], "--val-fraction"),
], ids=["missing-list", "roc-alone", "roc-without-pairs", "gallery-without-retrieval",
        "bad-ks", "bad-fraction"])
def test_usage_errors_exit_2(work: Work, capsys, extra, message):
    work.write("all.txt", [f"{p} {c}" for p, c in zip(work.paths, work.labels)])
    code, _, err = _run(capsys, "test", "-model", "train_test.prototxt", *extra)
    assert code == 2 and message in err


def test_scatter_of_one_dimension_is_refused(work: Work, capsys):
    pytest.importorskip("matplotlib")
    listed = work.write("all.txt", [f"{p} {c}" for p, c in zip(work.paths, work.labels)])
    code, _, err = _run(capsys, "test", "-model", "train_test.prototxt", "-weights",
                        "tiny.caffemodel", "--retrieval", listed, "--feature", "sim",
                        "--scatter", "x.png")
    assert code == 2 and "at least 2 feature dimensions" in err


def test_list_verbs_errors(work: Work, capsys):
    one = work.write("one_class.txt", [f"{p} 0" for p in work.paths])
    code, _, err = _run(capsys, "pairs", one)
    assert code == 2 and "one_class.txt: error: cannot draw pairs" in err
    code, _, err = _run(capsys, "triplets", "no_such_folder")
    assert code == 2 and "no_such_folder: error: no such folder or list file" in err
    (work.root / "empty").mkdir()
    code, _, err = _run(capsys, "pairs", "empty")
    assert code == 2 and "no class sub-folder" in err
    code, _, err = _run(capsys, "pairs", "images", "--count", "0")
    assert code == 2 and "--count" in err


def test_list_verbs_are_reproducible(work: Work, capsys):
    for out in ("x", "y", "z"):
        seed = "7" if out != "z" else "8"
        assert _run(capsys, "pairs", "images", "--out-dir", out, "--seed", seed)[0] == 0
    x, y, z = ((work.root / d / "train1.txt").read_text() for d in ("x", "y", "z"))
    assert x == y != z
    assert len(x.splitlines()) == len(work.paths)  # default: one pair per image
