"""MultinomialLogisticLoss: -log(max(p[label], 1e-20)) / N, clamped in the gradient too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.registry import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden

TEXT = 'type: "MultinomialLogisticLoss" bottom: "p" bottom: "y" top: "loss"'


@golden_params("MultinomialLogisticLoss")
def test_golden(case_dir):
    run_golden(case_dir)


def test_value_gradient_and_clamp():
    prob = np.array([[0.2, 0.8, 0.0], [0.0, 0.5, 0.5], [0.3, 0.3, 0.4]], np.float32)
    labels = np.array([1.0, 0.0, 2.0], np.float32)
    module = build(TEXT, [prob.shape, labels.shape])
    p = torch.tensor(prob, requires_grad=True)
    loss = module(p, torch.tensor(labels))
    loss.backward()
    want = -(np.log(0.8) + np.log(1e-20) + np.log(0.4)) / 3
    np.testing.assert_allclose(loss.item(), want, rtol=1e-6)
    expected = np.zeros((3, 3))
    expected[0, 1] = -1 / (3 * 0.8)
    expected[1, 0] = -1 / (3 * np.float32(1e-20))
    expected[2, 2] = -1 / (3 * 0.4)
    np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-6)


def test_4d_probabilities_index_the_flat_item():
    module = build(TEXT, [(2, 3, 1, 1), (2, 1, 1, 1)])
    prob = torch.tensor([0.1, 0.2, 0.7, 0.25, 0.25, 0.5]).reshape(2, 3, 1, 1)
    loss = module(prob, torch.tensor([2.0, 1.0]).reshape(2, 1, 1, 1))
    assert loss.item() == pytest.approx(-(np.log(0.7) + np.log(0.25)) / 2)


def test_label_with_several_values_per_item_is_a_build_error():
    with pytest.raises(BuildError, match="one value per item"):
        build(TEXT, [(2, 3), (2, 2)])


@pytest.mark.parametrize("alias", ["MULTINOMIAL_LOGISTIC_LOSS", "multinomial_logistic_loss"])
def test_aliases(alias):
    assert find_layer_spec(alias).type == "MultinomialLogisticLoss"
