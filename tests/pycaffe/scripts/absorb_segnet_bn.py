"""Absorb SegNet's BN (bn_mode: INFERENCE, y = scale * x + shift) into the convolution
before it, editing the prototxt through caffe_pb2 + text_format as ENet's
BN-absorber-enet.py does. Written for a fork whose caffe.proto has SegNet's BNParameter
(scale_filler, shift_filler, bn_mode), so it runs only with that schema:

    caffe2torch run --proto fork.proto absorb_segnet_bn.py OUT_DIR
"""

import os
import sys

import caffe
import numpy as np
from caffe.proto import caffe_pb2
from google.protobuf import text_format

NET = """name: "segnet_bn"
fork_comment: "written for the fork"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 bias_term: false kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn" type: "BN" bottom: "conv" top: "bn"
  bn_param { scale_filler { type: "constant" value: 1 }
             shift_filler { type: "constant" value: 0.001 } bn_mode: INFERENCE } }
layer { name: "ip" type: "InnerProduct" bottom: "bn" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
"""

out = sys.argv[1]
model = os.path.join(out, "bn.prototxt")
weights = os.path.join(out, "bn.caffemodel")
with open(model, "w") as f:
    f.write(NET)

# the prototxt as the fork's message: SegNet's fields, the fork's enum
msg = caffe_pb2.NetParameter()
with open(model) as f:
    text_format.Merge(f.read(), msg)
bn = msg.layer[2]
assert bn.bn_param.bn_mode == caffe_pb2.BNParameter.INFERENCE
assert bn.bn_param.shift_filler.value == np.float32(0.001)

# trained weights stand-in: random BN scale and shift, saved and read back
rng = np.random.default_rng(0)
net = caffe.Net(model, caffe.TEST)
net.params["bn"][0].data[...] = rng.uniform(0.5, 1.5, net.params["bn"][0].data.shape)
net.params["bn"][1].data[...] = rng.normal(0, 0.5, net.params["bn"][1].data.shape)
net.save(weights)
net = caffe.Net(model, weights, caffe.TEST)

# the prototxt without BN: the convolution gets a bias and feeds the BN's reader
conv = msg.layer[1]
conv.convolution_param.bias_term = True
conv.convolution_param.bias_filler.type = "constant"
msg.layer[3].bottom[0] = conv.top[0]
msg.layer.remove(bn)
folded_model = os.path.join(out, "folded.prototxt")
with open(folded_model, "w") as f:
    f.write(text_format.MessageToString(msg))

folded = caffe.Net(folded_model, caffe.TEST)
gamma = net.params["bn"][0].data.reshape(-1)
beta = net.params["bn"][1].data.reshape(-1)
folded.params["conv"][0].data[...] = net.params["conv"][0].data * gamma[:, None, None, None]
folded.params["conv"][1].data[...] = beta
folded.params["ip"][0].data[...] = net.params["ip"][0].data
folded.params["ip"][1].data[...] = net.params["ip"][1].data
folded_weights = os.path.join(out, "folded.caffemodel")
folded.save(folded_weights)

x = rng.normal(0, 1, net.blobs["data"].data.shape).astype(np.float32)
net.blobs["data"].data[...] = x
ref = net.forward()["ip"].copy()
again = caffe.Net(folded_model, folded_weights, caffe.TEST)
again.blobs["data"].data[...] = x
got = again.forward()["ip"]
print("layers", [layer.type for layer in msg.layer])
print("max difference", float(np.abs(got - ref).max()))
