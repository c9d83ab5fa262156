"""Fine-tuning as in Caffe's 02-fine-tuning notebook: weights from a trained net copied by
layer name into a net whose last layer is new (renamed), then trained on.

usage: finetune.py WORKDIR
"""
import os
import sys

import caffe
import numpy as np
from caffe import layers as L

workdir = sys.argv[1]
os.chdir(workdir)


def net(num_classes, last):
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[8, 1, 8, 8]), dict(dim=[8])],
                                  data_filler=[dict(type='gaussian', std=1),
                                               dict(type='constant')], ntop=2)
    n.conv = L.Convolution(n.data, kernel_size=3, num_output=4,
                           weight_filler=dict(type='xavier'))
    n.relu = L.ReLU(n.conv, in_place=True)
    n[last] = L.InnerProduct(n.relu, num_output=num_classes,
                             weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n[last], n.label)
    return str(n.to_proto())


for name, text in (('base.prototxt', net(10, 'fc')), ('style.prototxt', net(3, 'fc_style'))):
    with open(name, 'w') as f:
        f.write(text)
with open('style_solver.prototxt', 'w') as f:
    f.write('train_net: "style.prototxt" base_lr: 0.01 lr_policy: "fixed" momentum: 0.9 '
            'max_iter: 100 snapshot_prefix: "style" display: 0')

base = caffe.Net('base.prototxt', caffe.TRAIN)
base.save('base.caffemodel')

solver = caffe.SGDSolver('style_solver.prototxt')
solver.net.copy_from('base.caffemodel')
assert np.array_equal(solver.net.params['conv'][0].data, base.params['conv'][0].data)
print([(k, v[0].data.shape) for k, v in solver.net.params.items()])
fresh = solver.net.params['fc_style'][0].data.copy()
solver.step(5)
assert not np.array_equal(solver.net.params['conv'][0].data, base.params['conv'][0].data)
assert not np.array_equal(solver.net.params['fc_style'][0].data, fresh)
print('iter', solver.iter)
