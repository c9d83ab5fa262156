"""Training the V1 Siamese ImageNet seed (../shared/seeds/siamese_imagenet_v1.prototxt) as
written: two IMAGE_DATA layers reading train1.txt / train2.txt row-aligned, two AlexNet
towers, CONTRASTIVE_LOSS on fc7 with train1's label as the similarity.

To run fast on a CPU the test trains a copy of the prototxt with two edits, and only these:
``batch_size: 32`` -> 4 and ``new_height``/``new_width: 256`` -> 64 (AlexNet still fits:
pool5 is 1x1). The images are 12 small PNGs written here (two visual classes), the lists
pair them up; a pair is similar (label 1) when both images are of one class.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

import caffe2torch as c2t

SOLVER = """net: "siamese_small.prototxt"
type: "SGD"
base_lr: 0.002
momentum: 0.9
lr_policy: "fixed"
max_iter: 30
display: 1
random_seed: 5
solver_mode: CPU
"""


def _image(kind: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(100 * kind + k)
    img = rng.integers(0, 40, size=(48, 48, 3), dtype=np.uint8)
    if kind == 0:  # bright horizontal stripes
        img[::6] = 230
    else:  # a bright block in the middle
        img[16:32, 16:32] = 230
    return img


@pytest.mark.slow
def test_siamese_seed_trains(seeds_dir: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    text = (seeds_dir / "siamese_imagenet_v1.prototxt").read_text()
    assert text.count("batch_size: 32") == 4 and text.count("new_height: 256") == 4
    small = text.replace("batch_size: 32", "batch_size: 4").replace(
        "new_height: 256", "new_height: 64").replace("new_width: 256", "new_width: 64")
    (tmp_path / "siamese_small.prototxt").write_text(small)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    names = []
    for i in range(12):
        name = f"img_{i}.png"
        assert cv2.imwrite(str(tmp_path / name), _image(i % 2, i))
        names.append((name, i % 2))
    rng = np.random.default_rng(0)
    left, right = [], []
    for i in range(24):  # half similar pairs, half dissimilar
        a = names[int(rng.integers(12))]
        pool = [n for n in names if (n[1] == a[1]) == (i % 2 == 0) and n != a]
        b = pool[int(rng.integers(len(pool)))]
        similar = int(a[1] == b[1])
        left.append(f"{a[0]} {similar}")
        right.append(f"{b[0]} {similar}")
    (tmp_path / "train1.txt").write_text("\n".join(left) + "\n")
    (tmp_path / "train2.txt").write_text("\n".join(right) + "\n")
    monkeypatch.chdir(tmp_path)

    solver = c2t.get_solver("solver.prototxt", log=None)
    assert solver.net.blob_shapes["data"] == (4, 3, 64, 64)
    assert solver.net.inputs == ["data", "label", "data_p", "label_p"]
    losses = []
    for _ in range(30):
        solver.step(1)
        losses.append(solver.iteration_loss)
    assert all(math.isfinite(v) for v in losses)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < first, (first, last, losses)
