"""``caffe2torch train`` on a tiny segmentation net of the forks' layers: ImageSegData
(label images, crop, mirror, mean) -> Convolution -> SoftmaxWithLoss with ignore_label,
and SegAccuracy in the TEST net; generated images whose label is a threshold of their
first channel. A few SGD steps lower the loss."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from caffe2torch.cli.main import main
from caffe2torch.solver.metrics import read_metrics

NET = """name: "tiny_seg"
layer { name: "data" type: "ImageSegData" top: "data" top: "label" top: "data_dim"
  include { phase: TRAIN }
  image_data_param { source: "train.txt" root_folder: "img/" label_type: PIXEL
                     ignore_label: 255 batch_size: 4 shuffle: true }
  transform_param { crop_size: 8 mirror: true scale: 0.0078125
                    mean_value: 128 mean_value: 128 mean_value: 128 } }
layer { name: "data" type: "ImageSegData" top: "data" top: "label"
  include { phase: TEST }
  image_data_param { source: "train.txt" root_folder: "img/" label_type: PIXEL
                     batch_size: 4 }
  transform_param { crop_size: 8 scale: 0.0078125
                    mean_value: 128 mean_value: 128 mean_value: 128 } }
layer { name: "silence" type: "Silence" bottom: "data_dim" include { phase: TRAIN } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
  convolution_param { num_output: 2 kernel_size: 1
                      weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param { ignore_label: 255 } }
layer { name: "accuracy" type: "SegAccuracy" bottom: "score" bottom: "label"
  top: "accuracy" include { phase: TEST } seg_accuracy_param { ignore_label: 255 } }
"""

SOLVER = """net: "net.prototxt"
base_lr: 0.5
lr_policy: "fixed"
momentum: 0.9
max_iter: 30
display: 1
test_iter: 1
test_interval: 30
random_seed: 3
snapshot_prefix: "out/seg"
"""


@pytest.fixture
def seg_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    lines = []
    for i in range(6):
        img = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
        label = (img[:, :, 0] >= 128).astype(np.uint8)
        label[0] = 255  # an ignored row
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), img)
        cv2.imwrite(str(tmp_path / "img" / f"{i}_gt.png"), label)
        lines.append(f"{i}.png {i}_gt.png")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_training_lowers_the_loss(seg_project: Path) -> None:
    assert main(["train", "-solver", "solver.prototxt", "-q", "--log-csv", "m.csv"]) == 0
    rows = read_metrics(seg_project / "m.csv")
    losses = [r["value"] for r in rows if r["metric"] == "iteration_loss"]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    # SegAccuracy's three numbers, tested before the first step and after the last
    pixel = {r["iteration"]: r["value"] for r in rows if r["metric"] == "accuracy[0]"}
    assert sorted(pixel) == [0, 30] and pixel[30] > 0.9 > pixel[0]
    assert {r["metric"] for r in rows if r["net"] == "test0"} >= {
        "accuracy[1]", "accuracy[2]"}
