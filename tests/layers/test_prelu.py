"""PReLU: one learned slope per channel (axis 1) or one shared 0-axis slope."""

import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("PReLU")
def test_golden(case_dir):
    run_golden(case_dir)


def test_default_slopes_are_a_quarter_per_channel():
    m = build('name: "p" type: "PReLU" bottom: "x" top: "y"', [(2, 5, 3, 3)])
    assert tuple(m.blobs[0].shape) == (5,)
    assert torch.equal(m.blobs[0].detach(), torch.full((5,), 0.25))


def test_channel_shared_slope_is_a_0_axis_blob():
    m = build(
        'name: "p" type: "PReLU" bottom: "x" top: "y" prelu_param { channel_shared: true }',
        [(2, 5)],
    )
    assert tuple(m.blobs[0].shape) == ()


def test_filler_is_used():
    m = build(
        'name: "p" type: "PReLU" bottom: "x" top: "y" '
        'prelu_param { filler { type: "constant" value: 0.5 } }',
        [(1, 3, 2)],
    )
    assert torch.equal(m.blobs[0].detach(), torch.full((3,), 0.5))


def test_gradients_match_caffe_formulas():
    m = build('name: "p" type: "PReLU" bottom: "x" top: "y"', [(2, 3, 4)])
    with torch.no_grad():
        m.blobs[0].copy_(torch.tensor([0.1, 0.2, 0.3]))
    x = torch.randn(2, 3, 4)
    x[0, 0, 0] = 0.0
    x.requires_grad_(True)
    dy = torch.randn(2, 3, 4)
    y = m(x)
    y.backward(dy)
    a = m.blobs[0].detach().view(1, 3, 1)
    pos = x.detach() > 0
    torch.testing.assert_close(y.detach(), torch.where(pos, x.detach(), a * x.detach()))
    torch.testing.assert_close(x.grad, torch.where(pos, dy, a * dy))
    expected = (dy * x.detach() * (~pos)).sum(dim=(0, 2))
    torch.testing.assert_close(m.blobs[0].grad, expected)


def test_needs_two_axes():
    with pytest.raises(BuildError, match="at least 2 axes"):
        build('name: "p" type: "PReLU" bottom: "x" top: "y"', [(7,)])
