"""SSD's MultiBoxLoss (MAX_NEGATIVE mining, SOFTMAX, 21 classes): one forward + backward at
MobileNet-SSD's 1917 priors (batch 8 and 32) and SSD300's 8732 (batch 8), with 1-10
ground-truth boxes per image, set against a plain softmax + SmoothL1 over every prior (the
arithmetic any SSD loss does, without matching or mining) timed beside it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bench.common import Report, paired_ratio
from caffe2torch.layers.forks.ssd_loss import MultiBoxSpec, multibox_loss

NUM_CLASSES = 21
# (feature map side, min size, max size or 0, aspect ratios besides 1) of each source
MOBILENET_SSD = [(19, 60, 0, (2.0,)), (10, 105, 150, (2.0, 3.0)), (5, 150, 195, (2.0, 3.0)),
                 (3, 195, 240, (2.0, 3.0)), (2, 240, 285, (2.0, 3.0)),
                 (1, 285, 300, (2.0, 3.0))]
SSD300 = [(38, 30, 60, (2.0,)), (19, 60, 111, (2.0, 3.0)), (10, 111, 162, (2.0, 3.0)),
          (5, 162, 213, (2.0, 3.0)), (3, 213, 264, (2.0,)), (1, 264, 315, (2.0,))]


def prior_blob(sources: list[tuple[int, int, int, tuple[float, ...]]], image: int = 300,
               var: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)) -> torch.Tensor:
    """PriorBox's (1, 2, P * 4) output for square sources (flipped ratios, clipped)."""
    boxes = []
    for side, lo, hi, ratios in sources:
        sizes: list[tuple[float, float]] = [(lo, lo)]
        if hi:
            sizes.append((float(np.sqrt(lo * hi)),) * 2)
        for r in ratios:
            sizes += [(lo * np.sqrt(r), lo / np.sqrt(r)), (lo / np.sqrt(r), lo * np.sqrt(r))]
        for y in range(side):
            for x in range(side):
                cx, cy = (x + 0.5) / side, (y + 0.5) / side
                for w, h in sizes:
                    boxes.append([cx - w / image / 2, cy - h / image / 2,
                                  cx + w / image / 2, cy + h / image / 2])
    b = np.clip(np.asarray(boxes, np.float32), 0, 1)
    v = np.tile(np.asarray(var, np.float32), (len(b), 1))
    return torch.from_numpy(np.concatenate([b.reshape(-1), v.reshape(-1)])).reshape(1, 2, -1)


def ground_truth(rng: np.random.Generator, num: int) -> torch.Tensor:
    rows = []
    for item in range(num):
        for _ in range(int(rng.integers(1, 11))):
            c = rng.uniform(0.15, 0.85, 2)
            s = rng.uniform(0.05, 0.6, 2)
            lo, hi = np.clip(c - s / 2, 0, 1), np.clip(c + s / 2, 0, 1)
            rows.append([item, int(rng.integers(1, NUM_CLASSES)), 0, *lo, *hi, 0])
    return torch.tensor(rows, dtype=torch.float32).reshape(1, 1, -1, 8)


def inputs(num: int, sources: list[tuple[int, int, int, tuple[float, ...]]], seed: int = 0
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loc, conf, prior, gt) of a realistic batch: predictions as an untrained net gives."""
    rng = np.random.default_rng(seed)
    prior = prior_blob(sources)
    npri = prior.shape[2] // 4
    loc = torch.from_numpy(rng.normal(0, 0.5, (num, npri * 4)).astype(np.float32))
    conf = torch.from_numpy(rng.normal(0, 1.0, (num, npri * NUM_CLASSES)).astype(np.float32))
    return loc, conf, prior, ground_truth(rng, num)


def loss_step(loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor, gt: torch.Tensor,
              spec: MultiBoxSpec) -> Callable[[], None]:
    def step() -> None:
        lt = loc.clone().requires_grad_(True)
        ct = conf.clone().requires_grad_(True)
        multibox_loss(lt, ct, prior, gt, spec).backward()
    return step


def plain_step(loc: torch.Tensor, conf: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        lt = loc.clone().requires_grad_(True)
        ct = conf.clone().requires_grad_(True)
        target = torch.zeros(ct.numel() // NUM_CLASSES, dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(ct.reshape(-1, NUM_CLASSES), target,
                                                 reduction="sum")
        loss = loss + torch.nn.functional.smooth_l1_loss(lt, torch.zeros_like(lt),
                                                         reduction="sum")
        loss.backward()
    return step


CASES = [("MobileNet-SSD b8", 8, MOBILENET_SSD), ("MobileNet-SSD b32", 32, MOBILENET_SSD),
         ("SSD300 b8", 8, SSD300)]


def run(report: Report, quick: bool) -> None:
    spec = MultiBoxSpec(num_classes=NUM_CLASSES)
    for name, num, sources in CASES:
        loc, conf, prior, gt = inputs(num, sources)
        npri = prior.shape[2] // 4
        t_plain, t_loss, ratio = paired_ratio(plain_step(loc, conf),
                                              loss_step(loc, conf, prior, gt, spec),
                                              repeat=3 if quick else 9, budget_s=0 if quick else 8)
        report.add("MultiBoxLoss", f"{name} x {npri} priors fwd+bwd",
                   f"{t_loss * 1e3:7.1f} ms", "", None,
                   f"{ratio:.1f}x a plain softmax + SmoothL1 over all priors "
                   f"({t_plain * 1e3:.1f} ms)")
