"""A tiny Siamese project on disk for the CLI tests: class folders of 8 x 8 grey PNGs,
aligned pair lists, a train_test net with two ImageData layers and a shared InnerProduct,
its solver, a deploy net and a caffemodel. Everything is written under one folder, and the
paths in the files are relative to it (run the verbs from there, as Caffe would)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from caffe2torch.cli.main import main

TRAIN_TEST = """name: "tiny_siamese"
layer { name: "pair_data" type: "ImageData" top: "data" top: "sim"
  include { phase: TRAIN }
  transform_param { scale: 0.00390625 }
  image_data_param { source: "train1.txt" batch_size: 2 is_color: false } }
layer { name: "pair_data_p" type: "ImageData" top: "data_p" top: "sim_p"
  include { phase: TRAIN }
  transform_param { scale: 0.00390625 }
  image_data_param { source: "train2.txt" batch_size: 2 is_color: false } }
layer { name: "pair_data" type: "ImageData" top: "data" top: "sim"
  include { phase: TEST }
  transform_param { scale: 0.00390625 }
  image_data_param { source: "train1.txt" batch_size: 2 is_color: false } }
layer { name: "pair_data_p" type: "ImageData" top: "data_p" top: "sim_p"
  include { phase: TEST }
  transform_param { scale: 0.00390625 }
  image_data_param { source: "train2.txt" batch_size: 2 is_color: false } }
layer { name: "feat" type: "InnerProduct" bottom: "data" top: "feat"
  param { name: "feat_w" } param { name: "feat_b" }
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "feat_p" type: "InnerProduct" bottom: "data_p" top: "feat_p"
  param { name: "feat_w" } param { name: "feat_b" }
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "ContrastiveLoss" bottom: "feat" bottom: "feat_p" bottom: "sim"
  top: "loss" contrastive_loss_param { margin: 1 } }
layer { name: "silence_sim_p" type: "Silence" bottom: "sim_p" }
"""

DEPLOY = """name: "tiny_siamese_deploy"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "feat" type: "InnerProduct" bottom: "data" top: "feat"
  inner_product_param { num_output: 2 } }
"""

SOLVER = """net: "train_test.prototxt"
test_iter: 1
test_interval: 2
base_lr: 0.01
lr_policy: "fixed"
momentum: 0.9
max_iter: 2
display: 1
snapshot_prefix: "out/tiny"
random_seed: 1
"""

UNBUILDABLE = """name: "broken"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
  pooling_param { pool: MAX kernel_size: 20 } }
"""


def make_project(root: Path) -> Path:
    """Write the project into ``root``; returns ``root``."""
    rng = np.random.default_rng(0)
    for k, cls in enumerate(("a", "b", "c")):
        (root / "images" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            img = np.clip(rng.normal(60 + 70 * k, 20, (8, 8)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / "images" / cls / f"{i}.png"), img)
    pairs = [("a/0", "a/1", 1), ("b/0", "c/0", 0), ("c/1", "c/2", 1), ("a/2", "b/1", 0),
             ("b/1", "b/2", 1), ("a/0", "c/2", 0)]
    (root / "train1.txt").write_text("".join(f"images/{x}.png {s}\n" for x, _, s in pairs))
    (root / "train2.txt").write_text("".join(f"images/{y}.png {s}\n" for _, y, s in pairs))
    (root / "train_test.prototxt").write_text(TRAIN_TEST)
    (root / "deploy.prototxt").write_text(DEPLOY)
    (root / "solver.prototxt").write_text(SOLVER)
    (root / "broken.prototxt").write_text(UNBUILDABLE)
    write_weights(root / "deploy.caffemodel")
    return root


def write_weights(path: Path) -> None:
    from google.protobuf import text_format

    from caffe2torch.io.binary import write_caffemodel_arrays
    from caffe2torch.proto import caffe_pb2

    net = text_format.Parse(DEPLOY, caffe_pb2.NetParameter())
    del net.layer[0]
    rng = np.random.default_rng(1)
    write_caffemodel_arrays(path, net, [[rng.normal(0, 0.1, (2, 64)).astype(np.float32),
                                         np.zeros(2, np.float32)]])


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``caffe2torch ARGV`` in process: (exit code, stdout, stderr), never a traceback."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err
