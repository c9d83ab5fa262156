"""The V1 Siamese ImageNet seed: builds in both phases, with and without automatic tower
sharing; tied towers hold one Parameter and its gradient sums both branches."""

from __future__ import annotations

import pytest
import torch

import caffe2torch as c2t

TOWER = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")
SMALL = {"data": (2, 3, 256, 256), "label": (2,), "data_p": (2, 3, 256, 256), "label_p": (2,)}


@pytest.fixture
def seed(seeds_dir):
    return seeds_dir / "siamese_imagenet_v1.prototxt"


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
@pytest.mark.parametrize("share", ["declared", "auto"])
def test_builds_in_each_phase(seed, phase, share):
    net = c2t.load_net(seed, phase=phase, share=share)
    # IMAGE_DATA tops from image_data_param: batch 32, colour, new_height/new_width 256
    assert net.blob_shapes["data"] == (32, 3, 256, 256)
    assert net.blob_shapes["label"] == (32,)
    assert net.inputs == ["data", "label", "data_p", "label_p"]
    assert net.loss_weights == {"loss": 1.0}
    assert net.training == (phase == "TRAIN")
    tied = {(t.layer, t.owner) for t in net.shared_report.ties}
    if share == "auto":
        assert tied == {(f"{n}_p", n) for n in TOWER}
        assert len(net.learnable_params()) == 14
        for name in TOWER:
            for mine, owner in zip(net.params[f"{name}_p"], net.params[name]):
                assert mine is owner
    else:
        assert tied == set()
        assert len(net.learnable_params()) == 28
        assert net.params["conv1_p"][0] is not net.params["conv1"][0]
    sources = [ly.image_data_param.source for ly in net.data_layers]
    assert sources == (["train1.txt", "train2.txt"] if phase == "TRAIN"
                       else ["test1.txt", "test2.txt"])


def test_input_shapes_override_image_data(seed):
    net = c2t.load_net(seed, phase="TEST", input_shapes=SMALL)
    assert net.blob_shapes["data"] == (2, 3, 256, 256)
    assert net.blob_shapes["fc7"] == (2, 2)


@pytest.mark.slow
def test_tied_gradient_accumulates_both_branches(seed):
    torch.manual_seed(0)
    feed = {
        "data": torch.rand(2, 3, 256, 256),
        "data_p": torch.rand(2, 3, 256, 256),
        "label": torch.tensor([1.0, 0.0]),
        "label_p": torch.tensor([1.0, 0.0]),
    }
    tied = c2t.load_net(seed, phase="TEST", share="auto", input_shapes=SMALL)
    untied = c2t.load_net(seed, phase="TEST", input_shapes=SMALL)
    with torch.no_grad():
        for name in TOWER:
            for i, blob in enumerate(tied.params[name]):
                fan_in = blob[0].numel() if blob.dim() > 1 else 1
                value = torch.randn_like(blob) / fan_in**0.5 if blob.dim() > 1 else 0.1
                blob.copy_(torch.as_tensor(value).expand_as(blob))
                untied.params[name][i].copy_(blob)
                untied.params[f"{name}_p"][i].copy_(blob)
    tied.loss(tied(feed)).backward()
    untied.loss(untied(feed)).backward()
    for name in ("conv1", "fc7"):
        both = untied.params[name][0].grad + untied.params[f"{name}_p"][0].grad
        got = tied.params[name][0].grad
        assert float(both.abs().max()) > 0
        assert torch.allclose(got, both, rtol=1e-4, atol=1e-6 * float(both.abs().max()))
