"""Caffe's 01-learning-lenet notebook as a script: LeNet written with net_spec, a solver
stepped from Python, blobs and params read between steps.

usage: learn_lenet.py WORKDIR   (WORKDIR holds train.txt / test.txt of 28x28 digits)
"""
import os
import sys

import caffe
import numpy as np
from caffe import layers as L
from caffe import params as P

workdir = sys.argv[1]
os.chdir(workdir)


def lenet(source, batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.ImageData(source=source, root_folder="./", batch_size=batch_size,
                                  is_color=False, transform_param=dict(scale=1. / 255),
                                  ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


with open('lenet_auto_train.prototxt', 'w') as f:
    f.write(str(lenet('train.txt', 64)))
with open('lenet_auto_test.prototxt', 'w') as f:
    f.write(str(lenet('test.txt', 100)))
with open('lenet_auto_solver.prototxt', 'w') as f:
    f.write("""train_net: "lenet_auto_train.prototxt"
test_net: "lenet_auto_test.prototxt"
test_iter: 1
test_interval: 1000
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 0
max_iter: 10000
snapshot: 0
snapshot_prefix: "lenet"
random_seed: 1
""")

caffe.set_mode_cpu()
solver = caffe.SGDSolver('lenet_auto_solver.prototxt')

print([(k, v.data.shape) for k, v in solver.net.blobs.items()])
print([(k, v[0].data.shape) for k, v in solver.net.params.items()])

solver.net.forward()
solver.test_nets[0].forward()
print('train labels:', solver.net.blobs['label'].data[:8])

niter = int(sys.argv[2]) if len(sys.argv) > 2 else 60
train_loss = np.zeros(niter)
for it in range(niter):
    solver.step(1)
    train_loss[it] = solver.net.blobs['loss'].data
    if it == 0:
        # the diff of conv1's weights after the first step is what the update used
        assert solver.net.params['conv1'][0].diff.any()

solver.test_nets[0].forward(start='conv1')
correct = (solver.test_nets[0].blobs['score'].data.argmax(1)
           == solver.test_nets[0].blobs['label'].data).sum()
print('iter', solver.iter)
print(f'first loss {train_loss[:5].mean():.3f} last loss {train_loss[-5:].mean():.3f}')
print('test accuracy %.2f' % (correct / 100.0))
