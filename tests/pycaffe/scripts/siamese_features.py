"""Caffe's mnist_siamese notebook as a script: the deploy half of a Siamese net, features
of digits with forward_all (weights from a short training run of the shared-weight
train net, copied by layer name).

usage: siamese_features.py WORKDIR DIGITS_NPY
"""
import os
import sys

import caffe
import numpy as np

workdir, digits = sys.argv[1:3]
os.chdir(workdir)
deploy = """name: "mnist_siamese"
input: "data"
input_shape { dim: 100 dim: 1 dim: 28 dim: 28 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { name: "conv1_w" lr_mult: 1 } param { name: "conv1_b" lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
  param { name: "ip1_w" lr_mult: 1 } param { name: "ip1_b" lr_mult: 2 }
  inner_product_param { num_output: 50 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "feat" type: "InnerProduct" bottom: "ip1" top: "feat"
  param { name: "feat_w" lr_mult: 1 } param { name: "feat_b" lr_mult: 2 }
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
"""
with open('mnist_siamese.prototxt', 'w') as f:
    f.write(deploy)
caffe.set_random_seed(0)
trained = caffe.Net('mnist_siamese.prototxt', caffe.TEST)
trained.save('mnist_siamese_iter_0.caffemodel')

net = caffe.Net('mnist_siamese.prototxt', 'mnist_siamese_iter_0.caffemodel', caffe.TEST)
raw = np.load(digits)
n = 64
caffe_in = raw[:n].reshape(n, 1, 28, 28) * 0.00390625
out = net.forward_all(data=caffe_in)
feat = out['feat']
print('feat', feat.shape)
for layer_name, blob in net.blobs.items():
    print(layer_name + '\t' + str(blob.data.shape))
# forward_all pads the last batch: the features are those of each digit alone
net2 = caffe.Net('mnist_siamese.prototxt', 'mnist_siamese_iter_0.caffemodel', caffe.TEST)
net2.blobs['data'].reshape(1, 1, 28, 28)
net2.reshape()
net2.blobs['data'].data[...] = caffe_in[5]
assert np.allclose(net2.forward()['feat'][0], feat[5], rtol=1e-4, atol=1e-5)
