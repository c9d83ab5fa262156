"""Accuracy: top_k, ties count against the true class, axis, ignore_label, per-class top."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.registry import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes

TEXT = 'type: "Accuracy" bottom: "s" bottom: "y" top: "acc" '


def reference(scores, labels, top_k, axis, ignore):
    s = np.moveaxis(scores, axis, -1).reshape(-1, scores.shape[axis])
    hits = total = 0
    per_hit = np.zeros(scores.shape[axis])
    per_total = np.zeros(scores.shape[axis])
    for row, lab in zip(s, labels.reshape(-1).astype(int)):
        if ignore is not None and lab == ignore:
            continue
        ok = (row >= row[lab]).sum() - 1 < top_k
        hits += ok
        total += 1
        per_hit[lab] += ok
        per_total[lab] += 1
    per = np.divide(per_hit, per_total, out=np.zeros_like(per_hit), where=per_total > 0)
    return (hits / total if total else 0.0), per


@golden_params("Accuracy")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize(
    ("extra", "top_k", "axis", "ignore"),
    [
        ("", 1, 1, None),
        ("accuracy_param { top_k: 2 }", 2, 1, None),
        ("accuracy_param { axis: 2 }", 1, 2, None),
        ("accuracy_param { ignore_label: 0 top_k: 3 }", 3, 1, 0),
    ],
    ids=["top1", "top2", "axis2", "ignore_top3"],
)
def test_matches_reference(extra, top_k, axis, ignore):
    rng = np.random.default_rng(2)
    # Small integer scores: plenty of ties.
    scores = rng.integers(0, 3, size=(6, 4, 5)).astype(np.float32)
    label_shape = tuple(d for i, d in enumerate(scores.shape) if i != axis)
    labels = rng.integers(0, scores.shape[axis], size=label_shape).astype(np.float32)
    module = build(TEXT + 'top: "per_class" ' + extra, [scores.shape, labels.shape])
    acc, per = module(torch.tensor(scores), torch.tensor(labels))
    want, want_per = reference(scores, labels, top_k, axis, ignore)
    assert acc.shape == () and per.shape == (scores.shape[axis],)
    np.testing.assert_allclose(acc.item(), want, rtol=1e-6)
    np.testing.assert_allclose(per.numpy(), want_per, rtol=1e-6)


def test_ties_count_against_the_true_class():
    module = build(TEXT, [(1, 3), (1,)])
    assert module(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([0.0])).item() == 0.0
    module2 = build(TEXT + "accuracy_param { top_k: 2 }", [(1, 3), (1,)])
    assert module2(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([0.0])).item() == 1.0


def test_everything_ignored_gives_zero():
    module = build(TEXT + "accuracy_param { ignore_label: 1 }", [(2, 3), (2,)])
    assert module(torch.randn(2, 3), torch.ones(2)).item() == 0.0


def test_no_gradient_and_shapes():
    module = build(TEXT + 'top: "per_class"', [(4, 5), (4,)])
    acc, per = module(torch.randn(4, 5, requires_grad=True), torch.zeros(4))
    assert not acc.requires_grad and not per.requires_grad
    assert top_shapes(module, [(4, 5), (4,)]) == [(), (5,)]


def test_top_k_larger_than_classes_is_a_build_error():
    with pytest.raises(BuildError, match="top_k"):
        build(TEXT + "accuracy_param { top_k: 6 }", [(2, 5), (2,)])


@pytest.mark.parametrize("alias", ["ACCURACY", "accuracy"])
def test_aliases(alias):
    spec = find_layer_spec(alias)
    assert spec.type == "Accuracy" and not spec.loss
