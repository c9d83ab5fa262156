"""Convolution + BatchNorm (+ Scale) folding for inference (graph.fold)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import caffe2torch as c2t

NET = """
name: "fold"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: 2
                            weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "sc1" type: "Scale" bottom: "conv1" top: "conv1"
        scale_param { bias_term: true filler { type: "uniform" min: 0.5 max: 1.5 }
                      bias_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 5 kernel_size: 1 bias_term: false group: 1
                            weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "bn2" }
"""


def _pair(tmp_path: Path, phase: str = "TEST") -> tuple[c2t.CaffeNet, c2t.CaffeNet]:
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    torch.manual_seed(0)
    plain = c2t.load_net(path, phase=phase)
    for name in ("bn1", "bn2"):
        mean, var, factor = plain.params[name]
        mean.data.normal_(0, 0.5)
        var.data.uniform_(0.5, 2.0)
        factor.data.fill_(2.0)  # Caffe's scale_factor 1 / blob 2
    folded = c2t.load_net(path, phase=phase, fold_conv_bn=True)
    folded.load_state_dict(plain.state_dict())
    return plain, folded


def test_folded_net_matches_and_keeps_its_params(tmp_path: Path) -> None:
    plain, folded = _pair(tmp_path)
    assert folded.code.count("__folded") == 2  # conv1+bn1+sc1, conv2+bn2
    assert list(folded.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(folded(data=x)["bn2"], plain(data=x)["bn2"],
                                   rtol=1e-5, atol=1e-5)
        # a second call reuses the folded weights; a changed blob refolds
        folded.params["sc1"][0].mul_(2.0)
        plain.params["sc1"][0].mul_(2.0)
        torch.testing.assert_close(folded(data=x)["bn2"], plain(data=x)["bn2"],
                                   rtol=1e-5, atol=1e-5)


def test_gradients_reach_the_conv_and_scale_params(tmp_path: Path) -> None:
    plain, folded = _pair(tmp_path)
    x = torch.randn(2, 3, 9, 9)
    for net in (plain, folded):
        net(data=x)["bn2"].square().sum().backward()
    for layer in ("conv1", "sc1", "conv2"):
        for a, b in zip(plain.params[layer], folded.params[layer]):
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-4)


def test_requested_intermediates_and_batch_statistics_stay_unfolded(tmp_path: Path) -> None:
    plain, folded = _pair(tmp_path)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        got = folded(data=x, blobs=["conv2"])
        want = plain(data=x, blobs=["conv2"])
    torch.testing.assert_close(got["conv2"], want["conv2"], rtol=1e-5, atol=1e-5)
    assert folded._graph(("conv2",)).code.count("__folded") == 1  # conv1's chain only
    _, train = _pair(tmp_path, "TRAIN")  # BatchNorm with batch statistics: not an affine map
    assert "__folded" not in train.code


@pytest.mark.parametrize("fold", [False, True])
def test_fold_switch_rebuilds_the_graphs(tmp_path: Path, fold: bool) -> None:
    from caffe2torch.graph.fold import fold_conv_bn

    plain, _ = _pair(tmp_path)
    assert "__folded" not in plain.code
    fold_conv_bn(plain, fold)
    assert ("__folded" in plain.code) is fold


def test_folded_weights_follow_writes_that_bypass_version_counters(tmp_path: Path) -> None:
    plain, folded = _pair(tmp_path)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        folded(data=x)
        for net in (plain, folded):  # a write through a numpy view: no version change
            net.params["bn1"][0].detach().numpy()[...] += 1.0
            net.forget_param_caches()
        torch.testing.assert_close(folded(data=x)["bn2"], plain(data=x)["bn2"],
                                   rtol=1e-5, atol=1e-5)
