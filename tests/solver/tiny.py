"""A tiny classifier trained from a generated HDF5 set: the nets, solvers and data the
training-runner tests share."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

NET = """name: "tiny_mlp"
layer {{ name: "data" type: "HDF5Data" top: "data" top: "label"
  include {{ phase: TRAIN }}
  hdf5_data_param {{ source: "train.txt" batch_size: {batch} shuffle: {shuffle} }} }}
layer {{ name: "data" type: "HDF5Data" top: "data" top: "label"
  include {{ phase: TEST }}
  hdf5_data_param {{ source: "train.txt" batch_size: 6 }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param {{ num_output: 8 weight_filler {{ type: "gaussian" std: 0.3 }}
    bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.3 }} }} }}
layer {{ name: "accuracy" type: "Accuracy" bottom: "ip2" bottom: "label" top: "accuracy"
  include {{ phase: TEST }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

SOLVER = """net: "{net}"
type: "SGD"
base_lr: 0.1
lr_policy: "step"
gamma: 0.5
stepsize: 3
momentum: 0.9
weight_decay: 0.001
max_iter: {max_iter}
display: 1
test_iter: 2
test_interval: {test_interval}
snapshot_prefix: "{prefix}"
random_seed: 5
"""


def write_data(folder: Path, rows: int = 24, dim: int = 5, classes: int = 3) -> None:
    """``data.h5`` (rows x dim features, labels in [0, classes)) and ``train.txt``."""
    rng = np.random.default_rng(0)
    labels = np.arange(rows) % classes
    centers = rng.normal(0, 1, (classes, dim))
    data = centers[labels] + 0.5 * rng.normal(0, 1, (rows, dim))
    with h5py.File(folder / "data.h5", "w") as f:
        f["data"] = data.astype(np.float32)
        f["label"] = labels.astype(np.float32)
    (folder / "train.txt").write_text("data.h5\n")


def write_case(folder: Path, *, batch: int, name: str = "solver", max_iter: int = 6,
               shuffle: bool = True, test_interval: int = 1000) -> Path:
    """``<name>_net.prototxt`` and ``<name>.prototxt`` for ``batch``; returns the solver."""
    net = folder / f"{name}_net.prototxt"
    net.write_text(NET.format(batch=batch, shuffle=str(shuffle).lower()))
    solver = folder / f"{name}.prototxt"
    solver.write_text(SOLVER.format(net=net.name, max_iter=max_iter, prefix=f"out/{name}",
                                    test_interval=test_interval))
    return solver
