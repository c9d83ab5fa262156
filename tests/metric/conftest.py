"""A tiny Siamese net and labelled images in a temporary folder.

The net's towers average each colour channel over the image (global AVE pooling) and an
InnerProduct picks B and G, so the embedding of an image is known by hand:
(mean B, mean G) / 256. Class 0 images are dark, class 1 bright, each a uniform colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

TOWER = """
layer {{ name: "pool{s}" type: "Pooling" bottom: "data{s}" top: "pool{s}"
  pooling_param {{ pool: AVE global_pooling: true }} }}
layer {{ name: "feat{s}" type: "InnerProduct" bottom: "pool{s}" top: "feat{s}"
  param {{ name: "fw" }} param {{ name: "fb" }}
  inner_product_param {{ num_output: 2 weight_filler {{ type: "gaussian" std: 1 }} }} }}
"""

DATA = """
layer {{ name: "pair{s}" type: "ImageData" top: "data{s}" top: "sim{s}"
  include {{ phase: {phase} }} transform_param {{ scale: 0.00390625 }}
  image_data_param {{ source: "{source}" batch_size: 3 new_height: 8 new_width: 8 }} }}
"""

TRAIN_TEST = (
    'name: "tiny_siamese"\n'
    + DATA.format(s="", phase="TRAIN", source="train1.txt")
    + DATA.format(s="_p", phase="TRAIN", source="train2.txt")
    + DATA.format(s="", phase="TEST", source="test1.txt")
    + DATA.format(s="_p", phase="TEST", source="test2.txt")
    + TOWER.format(s="") + TOWER.format(s="_p")
    + 'layer { name: "loss" type: "ContrastiveLoss" bottom: "feat" bottom: "feat_p" '
      'bottom: "sim" top: "loss" contrastive_loss_param { margin: 1 } }\n'
)

DEPLOY = (
    'name: "tiny_deploy"\n'
    'layer { name: "input" type: "Input" top: "data"\n'
    '  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }\n'
    + TOWER.format(s="")
)

# (B, G, R) of each image: four per class
COLOURS = {
    0: [(20, 30, 0), (30, 20, 90), (25, 25, 200), (10, 40, 255)],
    1: [(200, 210, 0), (220, 190, 50), (210, 200, 0), (190, 230, 10)],
}


@dataclass
class Work:
    root: Path
    paths: list[str]  # relative to root
    labels: np.ndarray
    weights: Path
    train_test: Path
    deploy: Path

    def expected(self, index: int) -> np.ndarray:
        b, g, _ = COLOURS[int(self.labels[index])][index % 4]
        return np.array([b, g], np.float64) / 256

    def write(self, name: str, lines: list[str]) -> str:
        (self.root / name).write_text("".join(f"{x}\n" for x in lines))
        return name


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Work:
    import caffe2torch as c2t

    paths, labels = [], []
    for cls, colours in COLOURS.items():
        folder = tmp_path / "images" / f"class{cls}"
        folder.mkdir(parents=True)
        for k, bgr in enumerate(colours):
            img = np.empty((12, 10, 3), np.uint8)
            img[:] = bgr
            name = folder / f"img{k}.png"
            assert cv2.imwrite(str(name), img)
            paths.append(str(name.relative_to(tmp_path)))
            labels.append(cls)
    (tmp_path / "train_test.prototxt").write_text(TRAIN_TEST)
    (tmp_path / "deploy.prototxt").write_text(DEPLOY)
    net = c2t.load_net(tmp_path / "deploy.prototxt")
    w, b = net.params["feat"]
    w.data.zero_()
    w.data[0, 0] = 1.0  # B
    w.data[1, 1] = 1.0  # G
    b.data.zero_()
    weights = tmp_path / "tiny.caffemodel"
    net.save_caffemodel(weights)
    monkeypatch.chdir(tmp_path)
    return Work(tmp_path, paths, np.array(labels), weights, tmp_path / "train_test.prototxt",
                tmp_path / "deploy.prototxt")
