"""Caffe's 00-classification notebook as a script: CaffeNet, a Transformer, batch 50.

usage: classify.py DEPLOY_PROTOTXT IMAGE
"""
import sys

import caffe
import numpy as np

caffe.set_mode_cpu()
net = caffe.Net(sys.argv[1], caffe.TEST)
rng = np.random.RandomState(0)
for _name, (w, b) in net.params.items():  # no caffemodel offline: random weights
    w.data[...] = rng.normal(0, 0.01, w.data.shape)
    b.data[...] = 0.1

mu = np.array([104.0, 117.0, 123.0])  # BGR mean
transformer = caffe.io.Transformer({'data': net.blobs['data'].data.shape})
transformer.set_transpose('data', (2, 0, 1))
transformer.set_mean('data', mu)
transformer.set_raw_scale('data', 255)
transformer.set_channel_swap('data', (2, 1, 0))

net.blobs['data'].reshape(50, 3, 227, 227)
image = caffe.io.load_image(sys.argv[2])
transformed_image = transformer.preprocess('data', image)
net.blobs['data'].data[...] = transformed_image
output = net.forward()
output_prob = output['prob'][0]
print('predicted class is:', output_prob.argmax())

for layer_name, blob in net.blobs.items():
    print(layer_name + '\t' + str(blob.data.shape))
for layer_name, param in net.params.items():
    print(layer_name + '\t' + str(param[0].data.shape), str(param[1].data.shape))

# the preprocessing is Caffe's: BGR, 0-255, mean subtracted, CHW
resized = caffe.io.resize_image(image, (227, 227))
expected = (resized[:, :, ::-1] * 255 - mu).transpose(2, 0, 1)
assert np.allclose(transformed_image, expected, atol=1e-3)
assert np.allclose(transformer.deprocess('data', transformed_image), resized, atol=1e-5)
assert np.allclose(output_prob.sum(), 1.0, atol=1e-5)
