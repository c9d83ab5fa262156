"""Dropout: identity at TEST; at TRAIN keeps 1 - ratio of the values, scaled by 1/(1 - ratio)."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from caffe2torch.layers.bvlc.neuron import CaffeDropout
from tests.layers.helpers_core import build, golden_params, run_golden

TEXT = 'name: "d" type: "Dropout" bottom: "x" top: "x" dropout_param { dropout_ratio: 0.25 }'


@golden_params("Dropout")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["DROPOUT", "dropout"])
def test_names(alias):
    assert find_layer_spec(alias).type == "Dropout"


def test_test_phase_is_identity():
    m = build(TEXT, [(100,)], phase="TEST")
    x = torch.randn(100)
    assert torch.equal(m(x), x)


def test_train_phase_scales_kept_values():
    torch.manual_seed(0)
    m = build(TEXT, [(20000,)], phase="TRAIN")
    x = torch.rand(20000) + 1.0
    y = m(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert abs(kept.float().mean().item() - 0.75) < 0.02


def test_scale_train_false_scales_at_test_time():
    torch.manual_seed(0)
    m = CaffeDropout(0.25, scale_train=False)
    x = torch.rand(1000) + 1.0
    m.train()
    y = m(x)
    assert torch.equal(y[y != 0], x[y != 0])
    m.eval()
    torch.testing.assert_close(m(x), x * 0.75)


def test_ratio_one_is_refused():
    with pytest.raises(BuildError, match="dropout_ratio"):
        build(
            'name: "d" type: "Dropout" bottom: "x" top: "x" dropout_param { dropout_ratio: 1 }',
            [(3,)],
        )


def test_segnet_sample_weights_test_drops_at_test_time(tmp_path) -> None:
    # Bayesian SegNet (alexgkendall/caffe-segnet dropout_layer.cpp): with
    # sample_weights_test the TEST phase drops and scales as TRAIN does
    from tests.layers.fork_net import build_fork_layer

    _, layer = build_fork_layer(
        tmp_path, 'name: "d" type: "Dropout" bottom: "x" top: "y" '
        "dropout_param { dropout_ratio: 0.5 sample_weights_test: true }", (4, 256))
    assert not layer.training
    y = layer(torch.ones(4, 256)).numpy()
    assert set(y.ravel().tolist()) == {0.0, 2.0}
    _, plain = build_fork_layer(
        tmp_path, 'name: "d" type: "Dropout" bottom: "x" top: "y" '
        "dropout_param { dropout_ratio: 0.5 }", (4, 256))
    assert torch.equal(plain(torch.ones(4, 256)), torch.ones(4, 256))
