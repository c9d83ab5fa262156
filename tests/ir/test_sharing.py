"""Param sharing: declared (`param { name }`), untied, explicit and automatic towers, and
Caffe's AppendParam rules for ownership, shapes and multipliers."""

from __future__ import annotations

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.graph import build_net
from caffe2torch.io import read_net_text

SIAMESE = """
name: "siamese"
layer { name: "pair" type: "Input" top: "pair" top: "sim"
        input_param { shape { dim: 3 dim: 2 dim: 6 dim: 6 } shape { dim: 3 } } }
layer { name: "slice_pair" type: "Slice" bottom: "pair" top: "data" top: "data_p"
        slice_param { slice_dim: 1 slice_point: 1 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        PARAMS_A convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "feat"
        PARAMS_B inner_product_param { num_output: 4 } }
layer { name: "conv1_p" type: "Convolution" bottom: "data_p" top: "conv1_p"
        PARAMS_A_P convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "relu1_p" type: "ReLU" bottom: "conv1_p" top: "conv1_p" }
layer { name: "ip1_p" type: "InnerProduct" bottom: "conv1_p" top: "feat_p"
        PARAMS_B_P inner_product_param { num_output: 4 } }
layer { name: "ip2" type: "InnerProduct" bottom: "feat" top: "ip2"
        inner_product_param { num_output: 4 } }
layer { name: "loss" type: "ContrastiveLoss" bottom: "ip2" bottom: "feat_p" bottom: "sim"
        top: "loss" }
"""

DECLARED = {
    "PARAMS_A_P": 'param { name: "c1_w" lr_mult: 1 } param { name: "c1_b" lr_mult: 2 }',
    "PARAMS_A": 'param { name: "c1_w" lr_mult: 1 } param { name: "c1_b" lr_mult: 2 }',
    "PARAMS_B_P": 'param { name: "ip_w" } param { name: "ip_b" }',
    "PARAMS_B": 'param { name: "ip_w" } param { name: "ip_b" }',
}
PLAIN = dict.fromkeys(DECLARED, "")


def siamese(fill: dict[str, str], **kw):
    text = SIAMESE
    for key, value in fill.items():
        text = text.replace(key, value)
    return build_net(read_net_text(text), "TRAIN", **kw)


def feed():
    torch.manual_seed(0)
    return {"pair": torch.randn(3, 2, 6, 6), "sim": torch.tensor([1.0, 0.0, 1.0])}


def test_declared_sharing_is_one_parameter_with_accumulated_gradient():
    net = siamese(DECLARED)
    assert net.params["conv1"][0] is net.params["conv1_p"][0]
    assert net.params["ip1"][1] is net.params["ip1_p"][1]
    names = [n for n, *_ in net.learnable_params()]
    assert "conv1_p/0" not in names and "conv1/0" in names  # owner listed once
    assert len(net.learnable_params()) == 6
    net.loss(net(feed())).backward()
    shared = net.params["conv1"][0].grad.clone()
    # the same net untied, with the same values: the shared gradient is the sum of both
    untied = siamese(DECLARED, share=None)
    untied.load_state_dict(net.state_dict())
    with torch.no_grad():
        for name in ("conv1", "ip1"):
            for mine, theirs in zip(untied.params[name + "_p"], untied.params[name]):
                mine.copy_(theirs)
    assert untied.params["conv1"][0] is not untied.params["conv1_p"][0]
    untied.loss(untied(feed())).backward()
    total = untied.params["conv1"][0].grad + untied.params["conv1_p"][0].grad
    assert torch.allclose(shared, total, atol=1e-6)
    assert "untied" in str(untied.shared_report)


def test_auto_ties_towers_not_numbered_layers():
    net = siamese(PLAIN, share="auto")
    assert net.params["conv1"][0] is net.params["conv1_p"][0]
    assert net.params["ip1"][0] is net.params["ip1_p"][0]
    assert net.params["ip2"][0] is not net.params["ip1"][0]
    ties = {(t.layer, t.owner) for t in net.shared_report.ties}
    assert ties == {("conv1_p", "conv1"), ("ip1_p", "ip1")}
    plain = siamese(PLAIN)
    assert plain.params["conv1"][0] is not plain.params["conv1_p"][0]


def test_auto_skips_mismatched_multipliers():
    fill = dict(PLAIN, PARAMS_A="param { lr_mult: 1 } param { lr_mult: 2 }",
                PARAMS_A_P="param { lr_mult: 1 } param { lr_mult: 3 }")
    net = siamese(fill, share="auto")
    assert net.params["conv1"][0] is not net.params["conv1_p"][0]
    assert any("lr_mult" in s for s in net.shared_report.skipped)


def test_explicit_map_ties_named_layers():
    net = siamese(PLAIN, share={"ip1_p": "ip1"})
    assert net.params["ip1"][0] is net.params["ip1_p"][0]
    assert net.params["conv1"][0] is not net.params["conv1_p"][0]
    with pytest.raises(BuildError, match="no layer 'nope'"):
        siamese(PLAIN, share={"nope": "ip1"})
    with pytest.raises(BuildError, match="shapes differ"):
        siamese(PLAIN, share={"ip2": "conv1"})


def test_sharer_supplies_multiplier_owner_left_unset():
    fill = dict(PLAIN, PARAMS_A='param { name: "w" } param { name: "b" }',
                PARAMS_A_P='param { name: "w" lr_mult: 3 } param { name: "b" decay_mult: 0 }')
    net = siamese(fill)
    mults = {n: (lr, d) for n, _, lr, d in net.learnable_params()}
    assert mults["conv1/0"] == (3.0, 1.0) and mults["conv1/1"] == (1.0, 0.0)


def test_mismatched_lr_mult_is_refused():
    fill = dict(PLAIN, PARAMS_A='param { name: "w" lr_mult: 1 }',
                PARAMS_A_P='param { name: "w" lr_mult: 2 }')
    with pytest.raises(BuildError, match="mismatched lr_mult"):
        siamese(fill)


def test_strict_shape_and_permissive_count_checks():
    fill = dict(PLAIN, PARAMS_B='param { name: "w" }', PARAMS_A='param { name: "w" }')
    with pytest.raises(BuildError, match="shape mismatch"):
        siamese(fill)
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 6 } } }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" }
            inner_product_param { num_output: 4 bias_term: false } }
    layer { name: "b" type: "InnerProduct" bottom: "x" top: "b"
            param { name: "w" share_mode: PERMISSIVE }
            inner_product_param { num_output: 6 bias_term: false } }
    """
    with pytest.raises(BuildError, match="shape mismatch"):
        build_net(read_net_text(text.replace(" share_mode: PERMISSIVE", "")))
    with pytest.raises(BuildError, match="count mismatch"):  # 4x6 vs 6x6
        build_net(read_net_text(text))


def test_permissive_share_of_equal_count_other_shape():
    text = """
    layer { name: "in" type: "Input" top: "x" top: "y"
            input_param { shape { dim: 2 dim: 6 } shape { dim: 2 dim: 3 dim: 2 dim: 1 } } }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" }
            inner_product_param { num_output: 4 bias_term: false } }
    layer { name: "b" type: "Convolution" bottom: "y" top: "b"
            param { name: "w" share_mode: PERMISSIVE }
            convolution_param { num_output: 4 kernel_h: 2 kernel_w: 1 bias_term: false } }
    """
    # InnerProduct weight 4x6 and Convolution weight 4x3x2x1 hold 24 values each
    net = build_net(read_net_text(text))
    owner = net.params["a"][0]
    seen = net.module("b").blobs[0]
    assert tuple(seen.shape) == (4, 3, 2, 1)
    assert torch.equal(seen.reshape(-1), owner.reshape(-1))
    out = net(x=torch.randn(2, 6), y=torch.randn(2, 3, 2, 1))
    out["b"].sum().backward()
    assert owner.grad is not None and len(net.learnable_params()) == 1


def test_batchnorm_statistics_are_not_learnable():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" }
    """
    net = build_net(read_net_text(text), "TRAIN")
    assert [lr for *_, lr, _ in net.learnable_params()] == [0.0, 0.0, 0.0]
    bad = text.replace('top: "y" }', 'top: "y" param { lr_mult: 1 } }')
    with pytest.raises(BuildError, match="batch normalization statistics"):
        build_net(read_net_text(bad), "TRAIN")


def test_mnist_siamese_train_test_shares_declared_params(golden_dir):
    import caffe2torch as c2t

    net = c2t.load_net(golden_dir / "nets" / "mnist_siamese_train_test" / "net.prototxt")
    for layer in ("conv1", "conv2", "ip1", "ip2", "feat"):
        for mine, owner in zip(net.params[layer + "_p"], net.params[layer]):
            assert mine is owner
    assert len(net.shared_report.ties) == 5
