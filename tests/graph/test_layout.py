"""channels_last (graph.layout): params and inputs NHWC, values within the golden
tolerances, the layout kept through the convolutions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import CaffeError
from caffe2torch.graph.layout import channels_last_default, has_4d_input, use_channels_last
from tests.graph.test_golden_nets import run_net_case
from tests.support.golden import case_dirs, load_case

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.prototxt"
    path.write_text(NET)
    return path


def test_params_and_blobs_are_nhwc_and_values_unchanged(tiny: Path) -> None:
    plain = c2t.load_net(tiny, phase="TRAIN")
    nhwc = c2t.load_net(tiny, phase="TRAIN", channels_last=True)
    nhwc.load_state_dict(plain.state_dict())
    use_channels_last(nhwc)  # load_state_dict copies values, keeps the layout; again is a no-op
    weight = nhwc.params["conv"][0]
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    assert nhwc.params["ip"][0].is_contiguous()  # 2-D params untouched
    x = torch.randn(2, 3, 8, 8)
    out = nhwc(data=x, blobs=["conv"])
    assert out["conv"].is_contiguous(memory_format=torch.channels_last)
    ref = plain(data=x, blobs=["conv"])
    torch.testing.assert_close(out["ip"], ref["ip"], rtol=1e-5, atol=1e-6)
    out["ip"].sum().backward()
    ref["ip"].sum().backward()
    torch.testing.assert_close(weight.grad, plain.params["conv"][0].grad, rtol=1e-5, atol=1e-5)
    assert x.is_contiguous()  # the caller's tensor is not changed


def test_off_by_default_and_bad_argument(tiny: Path) -> None:
    net = c2t.load_net(tiny)
    assert net.memory_format is None and has_4d_input(net)
    assert net.params["conv"][0].is_contiguous()
    with pytest.raises(CaffeError, match="CaffeNet"):
        use_channels_last(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("name", ["lenet", "mnist_siamese"])
def test_channels_last_matches_caffe_golden(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = [d for d in case_dirs("nets") if d.name == name]
    if not dirs:
        pytest.skip("../shared/golden/nets is absent")
    real = c2t.load_net
    made = []

    def load(*a: object, **k: object) -> object:
        net = real(*a, channels_last=True, **k)  # type: ignore[arg-type]
        made.append(net)
        return net

    monkeypatch.setattr(c2t, "load_net", load)
    run_net_case(load_case(dirs[0]))
    assert made and made[0].memory_format is torch.channels_last


def test_default_rule_on_only_under_amp_on_a_gpu_for_image_nets(tiny: Path) -> None:
    net = c2t.load_net(tiny)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert channels_last_default(True, cuda, net)
    assert not channels_last_default(False, cuda, net)
    assert not channels_last_default(True, cpu, net)
    flat = c2t.load_net(tiny, input_shapes={"data": (2, 192)})
    assert not has_4d_input(flat) and not channels_last_default(True, cuda, flat)
