"""A Python data layer feeding a net, as in Caffe's pascal-multilabel-with-datalayer
notebook: the layer's module is this script (it names itself in python_param), batches
come from numpy, and a solver trains on them.

usage: python_data_layer.py WORKDIR
"""
import os
import sys

import caffe
import numpy as np


class XorData(caffe.Layer):
    """Batches of points in [-1, 1]^2 labelled by the sign of x * y."""

    def setup(self, bottom, top):
        params = eval(self.param_str)  # pycaffe's custom: a dict literal
        self.batch = params['batch_size']
        self.rng = np.random.RandomState(params['seed'])

    def reshape(self, bottom, top):
        top[0].reshape(self.batch, 2)
        top[1].reshape(self.batch)

    def forward(self, bottom, top):
        x = self.rng.uniform(-1, 1, (self.batch, 2))
        top[0].data[...] = x
        top[1].data[...] = (x[:, 0] * x[:, 1] > 0)

    def backward(self, top, propagate_down, bottom):
        pass


if __name__ == '__main__':
    os.chdir(sys.argv[1])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    with open('xor.prototxt', 'w') as f:
        f.write("""name: "xor"
layer { name: "data" type: "Python" top: "data" top: "label"
  python_param { module: "python_data_layer" layer: "XorData"
    param_str: "{'batch_size': 64, 'seed': 0}" } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 16 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
""")
    with open('xor_solver.prototxt', 'w') as f:
        f.write('train_net: "xor.prototxt" base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" '
                'max_iter: 1000 snapshot_prefix: "xor" display: 0 random_seed: 0')
    solver = caffe.SGDSolver('xor_solver.prototxt')
    print([(k, v.data.shape) for k, v in solver.net.blobs.items()])
    losses = []
    for _ in range(300):
        solver.step(1)
        losses.append(float(solver.net.blobs['loss'].data))
    acc = (solver.net.blobs['ip2'].data.argmax(1) == solver.net.blobs['label'].data).mean()
    print(f'loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}, accuracy {acc:.2f}')
