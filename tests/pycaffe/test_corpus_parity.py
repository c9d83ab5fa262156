"""Real deploy nets through pycaffe's layer-by-layer forward give exactly what load_net's
fx graph gives (random weights, one image): GoogLeNet (fan-outs: Caffe's Split layers),
ResNet-50 (BatchNorm + Scale, in-place ReLUs, Eltwise)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe2torch.pycaffe as caffe
from tests.conftest import CORPUS, need_shared

NETS = {
    "googlenet": CORPUS / "BVLC__caffe" / "models" / "bvlc_googlenet" / "deploy.prototxt",
    "resnet50": CORPUS / "KaimingHe__deep-residual-networks" / "prototxt" /
    "ResNet-50-deploy.prototxt",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NETS))
def test_layer_by_layer_forward_equals_the_graph(name: str) -> None:
    net = caffe.Net(str(need_shared(NETS[name])), caffe.TEST)
    rng = np.random.RandomState(0)
    for blobs in net.params.values():
        for b in blobs:
            b.data[...] = (rng.normal(0, 0.05, b.data.shape) if b.data.ndim > 1
                           else rng.uniform(0.5, 1.5, b.data.shape))
    x = rng.normal(0, 1, (1, *net.blobs["data"].data.shape[1:])).astype(np.float32)
    net.blobs["data"].reshape(*x.shape)
    net.blobs["data"].data[...] = x
    net.reshape()
    out = net.forward()
    with torch.no_grad():
        ref = net.caffe_net(data=torch.from_numpy(x))
    assert set(out) == set(ref)
    for key in out:
        np.testing.assert_array_equal(out[key], ref[key].numpy())
    if name == "googlenet":  # a fan-out: Caffe's Split layer and its tops are listed
        assert "pool2/3x3_s2_pool2/3x3_s2_0_split" in net._layer_names
