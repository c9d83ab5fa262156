"""Fold BatchNorm + Scale into the convolution before them, the net surgery that
deployment scripts do: read a net's params (telling param vectors apart by their type,
``caffe._caffe.BlobVec``), write the folded weights into a net without the BN layers,
save it, load it back and compare the two nets' outputs.

    caffe2torch run fold_batchnorm.py OUT_DIR
"""

import os
import sys

import caffe
import numpy as np

HEAD = """layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 %s
    weight_filler { type: "gaussian" std: 0.5 } } }
"""
BN = """layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv"
  scale_param { bias_term: true } }
"""
TAIL = 'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'

out = sys.argv[1]
with_bn, folded = os.path.join(out, "bn.prototxt"), os.path.join(out, "folded.prototxt")
with open(with_bn, "w") as f:
    f.write(HEAD % "bias_term: false" + BN + TAIL)
with open(folded, "w") as f:
    f.write(HEAD % "bias_term: true" + TAIL)

rng = np.random.RandomState(0)
net = caffe.Net(with_bn, caffe.TEST)
mean, var, factor = net.params["bn"]
mean.data[...] = rng.randn(4) * 2
var.data[...] = rng.rand(4) * 3 + 0.5
factor.data[...] = 4.0  # the moving-average scale factor the stats are divided by
net.params["scale"][0].data[...] = rng.rand(4) + 0.5
net.params["scale"][1].data[...] = rng.randn(4)

net2 = caffe.Net(folded, caffe.TEST)
for name, vec in net2.params.items():
    assert type(vec) is caffe._caffe.BlobVec, type(vec)
    print(name, [tuple(b.data.shape) for b in vec])
w = net.params["conv"][0].data
f = factor.data[0]
rstd = 1.0 / np.sqrt(var.data / f + 1e-5)
gamma, beta = net.params["scale"][0].data, net.params["scale"][1].data
net2.params["conv"][0].data[...] = w * (rstd * gamma).reshape(4, 1, 1, 1)
net2.params["conv"][1].data[...] = (0 - mean.data / f) * rstd * gamma + beta
net2.save(os.path.join(out, "folded.caffemodel"))

reloaded = caffe.Net(folded, os.path.join(out, "folded.caffemodel"), caffe.TEST)
x = rng.randn(2, 3, 8, 8).astype(np.float32)
a = net.forward(data=x)["conv"].copy()
b = reloaded.forward(data=x)["conv"]
print(f"max difference {float(np.abs(a - b).max()):.2g}")
