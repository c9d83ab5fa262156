"""Caffe's net_surgery notebook as a script: designer filters on a one-layer net, then
CaffeNet's fully connected layers cast into convolutions.

usage: net_surgery.py WORKDIR CAFFENET_DEPLOY FULL_CONV_PROTOTXT
"""
import os
import sys

import caffe
import numpy as np

workdir, deploy, full_conv = sys.argv[1:4]
caffe.set_mode_cpu()
with open(os.path.join(workdir, 'conv.prototxt'), 'w') as f:
    f.write("""name: "convolution"
input: "data"
input_dim: 1
input_dim: 1
input_dim: 100
input_dim: 100
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 5 stride: 1
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0 } } }
""")
net = caffe.Net(os.path.join(workdir, 'conv.prototxt'), caffe.TEST)
print(f"blobs {list(net.blobs.keys())}\nparams {list(net.params.keys())}")
im = np.random.RandomState(0).rand(360, 480).astype(np.float32)
im_input = im[np.newaxis, np.newaxis, :, :]
net.blobs['data'].reshape(*im_input.shape)
net.blobs['data'].data[...] = im_input
net.forward()
print('conv', net.blobs['conv'].data.shape)
# a box filter written into the weights is what the next forward uses
net.params['conv'][0].data[...] = 0
net.params['conv'][0].data[0] = 1.0 / 25
net.forward()
assert np.allclose(net.blobs['conv'].data[0, 0, 0, 0], im[:5, :5].mean(), atol=1e-5)
net.save(os.path.join(workdir, 'conv.caffemodel'))

net = caffe.Net(deploy, caffe.TEST)
rng = np.random.RandomState(1)
for _name, blobs in net.params.items():
    for b in blobs:
        b.data[...] = rng.normal(0, 0.02, b.data.shape)
params = ['fc6', 'fc7', 'fc8']
fc_params = {pr: (net.params[pr][0].data, net.params[pr][1].data) for pr in params}
for fc in params:
    w, b = fc_params[fc]
    print(f'{fc} weights are {w.shape} dimensional and biases are {b.shape} dimensional')
weights = os.path.join(workdir, 'caffenet_random.caffemodel')
net.save(weights)

net_full_conv = caffe.Net(full_conv, weights, caffe.TEST)
params_full_conv = ['fc6-conv', 'fc7-conv', 'fc8-conv']
conv_params = {pr: (net_full_conv.params[pr][0].data, net_full_conv.params[pr][1].data)
               for pr in params_full_conv}
for conv in params_full_conv:
    w, b = conv_params[conv]
    print(f'{conv} weights are {w.shape} dimensional and biases are {b.shape} dimensional')
for pr, pr_conv in zip(params, params_full_conv):
    conv_params[pr_conv][0].flat = fc_params[pr][0].flat  # flat unrolls the arrays
    conv_params[pr_conv][1][...] = fc_params[pr][1]

# the classification map of a 451 x 451 image
x = np.random.RandomState(2).normal(0, 50, (1, 3, 451, 451)).astype(np.float32)
net_full_conv.blobs['data'].data[...] = x
out = net_full_conv.forward()
print('prob map', out['prob'].shape)
# on a 227 x 227 image the cast net is CaffeNet itself (a 1 x 1 map)
crop = x[:, :, :227, :227]
net_full_conv.blobs['data'].reshape(*crop.shape)
net_full_conv.reshape()
net_full_conv.blobs['data'].data[...] = crop
cast = net_full_conv.forward()['prob']
net.blobs['data'].reshape(*crop.shape)
net.blobs['data'].data[...] = crop
ref = net.forward()['prob']
print('cast', cast.shape, 'caffenet', ref.shape)
assert np.allclose(cast[:, :, 0, 0], ref, rtol=1e-4, atol=1e-7), 'surgery mismatch'
print('the cast net computes CaffeNet')
