"""SegAccuracy (DeepLab-v2 / PSPNet): the three numbers of the fork's confusion matrix,
checked against a pixel-by-pixel transcription of seg_accuracy_layer.cpp and
confusion_matrix.cpp; ties, ignore labels, reset, the V1 name and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import BuildError, DataError


def reference(scores: np.ndarray, labels: np.ndarray, ignore: set[int],
              matrix: np.ndarray | None = None) -> tuple[list[float], np.ndarray]:
    """The fork's loops: (accuracy, avgRecall(false), avgJaccard), and the matrix."""
    n, c, h, w = scores.shape
    m = np.zeros((c, c), np.int64) if matrix is None else matrix.copy()
    for i in range(n):
        for y in range(h):
            for x in range(w):
                pairs = sorted(((float(scores[i, k, y, x]), k) for k in range(c)),
                               reverse=True)  # std::greater on (score, class)
                gt = int(labels[i, 0, y, x])
                if gt in ignore:
                    continue
                assert 0 <= gt < c
                m[gt, pairs[0][1]] += 1
    total, diag = m.sum(), np.trace(m)
    acc = diag / total if total else 0.0
    recalls = [m[k, k] / m[k].sum() for k in range(c) if m[k].sum() > 0]
    recall = sum(recalls) / len(recalls) if recalls else 0.0
    jac = 0.0
    for k in range(c):
        inter, union = m[k, k], m[k].sum() + m[:, k].sum() - m[k, k]
        jac += 1.0 if inter == union else inter / union
    return [float(acc), float(recall), float(jac / c)], m


def _net(tmp_path: Path, shape: tuple[int, ...], param: str, v1: bool = False):
    n, c, h, w = shape
    if v1:
        acc = ('layers { name: "acc" type: SEG_ACCURACY bottom: "s" bottom: "l" top: "acc" '
               f"seg_accuracy_param {{ {param} }} }}\n")
    else:
        acc = ('layer { name: "acc" type: "SegAccuracy" bottom: "s" bottom: "l" top: "acc" '
               f"seg_accuracy_param {{ {param} }} }}\n")
    text = (f'input: "s" input_shape {{ dim: {n} dim: {c} dim: {h} dim: {w} }}\n'
            f'input: "l" input_shape {{ dim: {n} dim: 1 dim: {h} dim: {w} }}\n' + acc)
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    return c2t.load_net(path)


def _run(net, scores: np.ndarray, labels: np.ndarray) -> list[float]:
    out = net(s=torch.from_numpy(scores), l=torch.from_numpy(labels))["acc"]
    assert out.shape == (1, 1, 1, 3) and out.dtype == torch.float32
    return out.reshape(-1).tolist()


@pytest.mark.parametrize("v1", [False, True])
def test_matches_the_forks_loops(tmp_path: Path, v1: bool) -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, (2, 4, 5, 6)).astype(np.float32)  # many ties
    labels = rng.integers(0, 4, (2, 1, 5, 6)).astype(np.float32)
    labels[0, 0, :2] = 255
    labels[1, 0, 0, :3] = 3.7  # static_cast<int>: 3
    net = _net(tmp_path, scores.shape, "ignore_label: 255", v1)
    want, _ = reference(scores, labels, {255})
    np.testing.assert_array_equal(_run(net, scores, labels), np.float32(want))


def test_a_tie_goes_to_the_higher_class(tmp_path: Path) -> None:
    scores = np.zeros((1, 3, 1, 2), np.float32)
    scores[0, :, 0, 1] = [5, 5, 1]
    labels = np.array([[[[2, 1]]]], np.float32)  # pixel 0: all tie -> 2; pixel 1: 0/1 -> 1
    net = _net(tmp_path, scores.shape, "")
    got = _run(net, scores, labels)
    # both right: accuracy 1; recall over classes 1 and 2: 1; IoU: class 0 has neither
    # pixels nor predictions (counts 1), classes 1 and 2 are exact
    assert got == [1.0, 1.0, 1.0]


def test_several_ignore_labels_and_no_counted_pixel(tmp_path: Path) -> None:
    scores = np.zeros((1, 2, 2, 2), np.float32)
    labels = np.array([[[[0, 255], [254, 255]]]], np.float32)
    net = _net(tmp_path, scores.shape, "ignore_label: 255 ignore_label: 254")
    want, _ = reference(scores, labels, {254, 255})
    np.testing.assert_array_equal(_run(net, scores, labels), np.float32(want))
    labels[0, 0, 0, 0] = 255
    assert _run(net, scores, labels) == [0.0, 0.0, 1.0]  # empty matrix: IoU 1 per class


def test_reset_false_keeps_counting(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    net = _net(tmp_path, (1, 3, 4, 4), "reset: false")
    matrix = None
    for _ in range(3):
        scores = rng.normal(size=(1, 3, 4, 4)).astype(np.float32)
        labels = rng.integers(0, 3, (1, 1, 4, 4)).astype(np.float32)
        want, matrix = reference(scores, labels, set(), matrix)
        np.testing.assert_array_equal(_run(net, scores, labels), np.float32(want))
    fresh = _net(tmp_path, (1, 3, 4, 4), "")
    assert _run(fresh, scores, labels) == pytest.approx(reference(scores, labels, set())[0])


def test_an_unexpected_label_stops(tmp_path: Path) -> None:
    net = _net(tmp_path, (1, 2, 1, 2), "ignore_label: 255")
    with pytest.raises(DataError, match="unexpected label 7 for 2 classes"):
        _run(net, np.zeros((1, 2, 1, 2), np.float32), np.array([[[[0, 7]]]], np.float32))


@pytest.mark.parametrize(
    ("param", "match"),
    [
        ("top_k: 2", "has no field 'top_k'"),
        ("metric: Dice", "unknown seg_accuracy_param.metric"),
        ("reset: 3", "reset must be true or false"),
    ],
)
def test_refusals(tmp_path: Path, param: str, match: str) -> None:
    with pytest.raises(BuildError, match=match):
        _net(tmp_path, (1, 2, 3, 3), param)


def test_metric_is_accepted_and_changes_nothing(tmp_path: Path) -> None:
    scores = np.random.default_rng(2).normal(size=(1, 3, 2, 2)).astype(np.float32)
    labels = np.array([[[[0, 1], [2, 1]]]], np.float32)
    a = _run(_net(tmp_path, scores.shape, "metric: PixelIOU"), scores, labels)
    assert a == _run(_net(tmp_path, scores.shape, ""), scores, labels)
