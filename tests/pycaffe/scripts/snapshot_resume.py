"""Train a tiny net for 3 iterations, snapshot, train 3 more; then a second solver restores
the snapshot and trains the last 3 again. Prints both loss trajectories and whether the
resumed weights equal the uninterrupted ones (used by tests/pycaffe/test_run_proto.py,
under `caffe2torch run --proto` and without it)."""

import json
import os
import sys

import caffe
import numpy as np

os.chdir(sys.argv[1])
DATA = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
TARGET = np.array([[0.5, -0.5], [1, 0], [0, 1], [-1, 0.25]], dtype=np.float32)


def feed(solver):
    solver.net.blobs["data"].data[...] = DATA
    solver.net.blobs["target"].data[...] = TARGET


def train(solver, iters):
    losses = []
    for _ in range(iters):
        feed(solver)
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    return losses


first = caffe.SGDSolver("solver.prototxt")
full = train(first, 3)
first.snapshot()
full += train(first, 3)

second = caffe.SGDSolver("solver.prototxt")
second.restore("snap/s_iter_3.solverstate")
resumed_at = second.iter
resumed = train(second, 3)
same = all(np.array_equal(a.data, b.data) for name in first.net.params
           for a, b in zip(first.net.params[name], second.net.params[name]))
print(json.dumps({"full": full, "resumed_at": resumed_at, "resumed": resumed,
                  "same_weights": same}))
