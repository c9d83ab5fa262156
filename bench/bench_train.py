"""Training step and its peak memory: the MNIST Siamese example (two towers sharing every
param, ContrastiveLoss) at batch 64 per tower, tensors fed directly, Caffe's SGD update
(momentum 0.9, lr_mult 1 / 2), against the same net and update written by hand.

Memory: peak resident set (VmHWM) of a fresh subprocess over a few training
steps, minus its resident set just before them, for the converted and hand-written
versions of the MNIST Siamese step, the seed's Siamese AlexNet and ResNet-50."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch

import caffe2torch as c2t
from bench import handwritten as hw
from bench.common import Report, paired_ratio

GOAL_SPEED = 0.97
GOAL_MEM = 1.05
EXAMPLE = os.path.join(os.path.dirname(c2t.__file__), "examples", "mnist_siamese")
BATCH = 64


def feed(batch: int = BATCH) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sim = torch.randint(0, 2, (batch,), generator=g).float()
    return {"data": torch.rand(batch, 1, 28, 28, generator=g),
            "data_p": torch.rand(batch, 1, 28, 28, generator=g), "sim": sim, "sim_p": sim}


def converted_step(lr: float = 0.01) -> tuple[Any, Callable[[], float]]:
    from caffe2torch.solver import make_optimizer

    solver = c2t.read_solver(os.path.join(EXAMPLE, "solver.prototxt"))
    shapes = {k: tuple(v.shape) for k, v in feed().items()}
    net = c2t.load_net(os.path.join(EXAMPLE, "train_test.prototxt"), phase="TRAIN",
                       input_shapes=shapes)
    groups = [{"params": [lp.param], "lr_mult": lp.lr_mult, "decay_mult": lp.decay_mult,
               "name": lp.name} for lp in net.learnable_params()]
    opt = make_optimizer(groups, solver)
    x = feed()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        out = net(**x)
        loss = net.loss(out)
        loss.backward()
        opt.step(rate=lr)
        return float(loss.detach())
    return net, step


class HandSGD:
    """Caffe's SGD written out: v = momentum * v + lr * lr_mult * (g + decay * w); w -= v."""

    def __init__(self, params: list[tuple[torch.Tensor, float]], momentum: float,
                 weight_decay: float) -> None:
        self.params = params
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.history = [torch.zeros_like(p) for p, _ in params]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        for (p, mult), v in zip(self.params, self.history):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p
            v.mul_(self.momentum).add_(g, alpha=lr * mult)
            p.sub_(v)


def hand_step(net: Any | None = None, lr: float = 0.01) -> tuple[Any, Callable[[], float]]:
    model = hw.MnistSiamese()
    if net is not None:
        hw.load_caffe_params(model, [lp.param.detach() for lp in net.learnable_params()])
    params = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            params += [(m.weight, 1.0), (m.bias, 2.0)]
    opt = HandSGD(params, momentum=0.9, weight_decay=0.0)
    x = feed()

    def step() -> float:
        model.zero_grad(set_to_none=True)
        loss = model(x["data"], x["data_p"], x["sim"])
        loss.backward()
        opt.step(lr)
        return float(loss.detach())
    return model, step


def run_speed(report: Report, quick: bool) -> None:
    net, a = converted_step()
    _, b = hand_step(net)
    # same weights, same data, same update: the loss trajectories must agree
    la = [a() for _ in range(3)]
    lb = [b() for _ in range(3)]
    diff = max(abs(x - y) / max(abs(y), 1e-6) for x, y in zip(la, lb))
    if diff > 1e-3:  # float32 rounding (Caffe's ContrastiveLoss gradient vs autograd's)
        raise AssertionError(f"training trajectories differ: {la} vs {lb}")
    repeat = 15 if quick else 41
    ta, tb, ratio = paired_ratio(a, b, repeat, warmup=3, budget_s=0 if quick else 8.0)
    report.add("training step", f"MNIST Siamese b{BATCH}x2 SGD step",
               f"{1 / ta:6.1f} vs {1 / tb:6.1f} it/s, pairs {ratio:.3f}x", f">= {GOAL_SPEED}x",
               ratio >= GOAL_SPEED, f"loss rel diff {diff:.0e} over 3 steps")


# ------------------------------------------------------------------------------ memory


def _status_bytes(field: str) -> int:
    """VmRSS / VmHWM of this process. (getrusage's maxrss survives exec on Linux, so a child
    started by a big parent would report the parent's peak; VmHWM belongs to the new image.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _model_step(case: str, which: str) -> Callable[[], None]:
    if case == "mnist_siamese":
        if which == "converted":
            _, step = converted_step()
        else:
            _, step = hand_step()
        return lambda: (step(), None)[1]
    from bench import bench_models as bm

    c = {"siamese_alexnet": bm.cases()[1], "resnet50": bm.cases()[3]}[case]
    x = bm.make_inputs(c)
    if which == "converted":
        net = c2t.load_net(c.prototxt, phase=c.phase, input_shapes=c.inputs)

        def step() -> None:
            out = net(**x)[c.output]
            out.sum().backward()
            net.zero_grad(set_to_none=True)
        return step
    hand = c.hand()
    hand.train(c.phase == "TRAIN")
    args = [x[n] for n in c.hand_args]

    def hstep() -> None:
        hand(*args).sum().backward()
        hand.zero_grad(set_to_none=True)
    return hstep


def memory_child(case: str, which: str) -> None:
    torch.set_num_threads(1)
    step = _model_step(case, which)
    base = _status_bytes("VmRSS")
    for _ in range(3):
        step()
    peak = _status_bytes("VmHWM")
    print(json.dumps({"base": base, "peak": peak}))


def _measure(case: str, which: str) -> dict[str, int]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "bench.bench_train", "--memory-child", case,
                          which], capture_output=True, text=True, check=True, cwd=root,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_memory(report: Report, quick: bool) -> None:
    cases = ["mnist_siamese", "resnet50"] if quick else ["mnist_siamese", "siamese_alexnet",
                                                          "resnet50"]
    for case in cases:
        a, b = _measure(case, "converted"), _measure(case, "hand")
        a2, b2 = _measure(case, "converted"), _measure(case, "hand")
        step_a = min(a["peak"] - a["base"], a2["peak"] - a2["base"])
        step_b = min(b["peak"] - b["base"], b2["peak"] - b2["base"])
        ratio = step_a / max(step_b, 1)
        report.add("memory", f"{case} training step peak - start RSS",
                   f"{step_a / 2**20:6.0f} vs {step_b / 2**20:6.0f} MiB = {ratio:.3f}x",
                   f"<= {GOAL_MEM}x", ratio <= GOAL_MEM,
                   f"whole-process peak {a['peak'] / 2**20:.0f} vs {b['peak'] / 2**20:.0f} MiB")


def run(report: Report, quick: bool) -> None:
    run_speed(report, quick)
    run_memory(report, quick)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2], sys.argv[3])
