"""Layouts and the GPU path (issue 21): channels_last against NCHW on the five nets of
the `caffe` benchmark (CPU, fwd+bwd and inference); on a GPU also the captured training
pass (solver.cuda_graph) against eager, AMP with channels_last against AMP in NCHW, and
the pinned copy-ahead (runtime.pinned) against a plain copy. Without a CUDA device the
GPU cases report "no CUDA device" (their numbers are taken the day one is present).

Speed ratios: time of the plain way / time of the new one (> 1: the new one is faster),
measured side by side (bench.common.paired_ratio)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import caffe2torch as c2t
from bench.bench_caffe import CaffeCase, cases, write_timing_net
from bench.common import Report, paired_ratio


def _feed(case: CaffeCase, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: (torch.randint(0, 2, s, generator=g).float() if k.startswith("label")
                else torch.randn(s, generator=g)).to(device)
            for k, s in case.inputs.items()}


def _fwd_bwd(net: Any, feed: dict[str, torch.Tensor], sync: Callable[[], None]
             ) -> Callable[[], None]:
    def step() -> None:
        for p in net.parameters():
            p.grad = None
        out = net(feed)
        loss = net.loss(out) if net.loss_weights else sum(
            o.float().sum() for o in out.values() if o.is_floating_point())
        loss.backward()
        sync()
    return step


def _forward(net: Any, feed: dict[str, torch.Tensor], sync: Callable[[], None]
             ) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            net(feed)
        sync()
    return run


def _load(path: Path, phase: str, device: torch.device, nhwc: bool) -> Any:
    net = c2t.load_net(str(path), phase=phase)
    net.to(device)
    if nhwc:
        from caffe2torch.graph.layout import use_channels_last

        use_channels_last(net)
    return net


def _channels_last_cpu(report: Report, quick: bool, tmp: Path) -> None:
    cpu = torch.device("cpu")
    for case in cases():
        path = tmp / (case.name.replace(" ", "_") + ".prototxt")
        write_timing_net(case, path)
        feed = _feed(case, cpu)
        repeat = 2 if quick else 5
        for what, phase, make in (("fwd+bwd", "TRAIN", _fwd_bwd), ("forward", "TEST", _forward)):
            plain = make(_load(path, phase, cpu, False), feed, lambda: None)
            nhwc = make(_load(path, phase, cpu, True), feed, lambda: None)
            a, b, ratio = paired_ratio(plain, nhwc, repeat)
            report.add("layout", f"channels_last {case.name} {what} (CPU)",
                       f"{a * 1e3:.0f} -> {b * 1e3:.0f} ms ({1 / ratio:.2f}x)", "", None)


def _cuda_graph_case(report: Report, device: torch.device, repeat: int, tmp: Path) -> None:
    from caffe2torch.solver.cuda_graph import CapturedStep

    case = cases()[0]  # LeNet b64: launch-bound, where replaying one graph pays most
    path = tmp / "lenet_graph.prototxt"
    write_timing_net(case, path)
    net = _load(path, "TRAIN", device, False)
    feed = _feed(case, device)
    params = [p for p in net.parameters() if p.requires_grad]

    def one_pass(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        out = net(batch)
        loss = sum(o.float().sum() for o in out.values() if o.is_floating_point())
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        return loss.detach(), out

    class Quiet:
        def info(self, *a: Any) -> None: ...
        def warning(self, *a: Any) -> None: ...

    step = CapturedStep(one_pass, params, Quiet())

    def eager() -> None:
        for p in params:
            p.grad = None
        one_pass(feed)
        torch.cuda.synchronize(device)

    def graphed() -> None:
        step.run(feed, True)
        torch.cuda.synchronize(device)

    for _ in range(5):
        graphed()  # warm-up passes and the capture
    a, b, ratio = paired_ratio(eager, graphed, repeat)
    report.add("gpu", "CUDA graph LeNet b64 fwd+bwd", f"{a * 1e3:.2f} -> {b * 1e3:.2f} ms "
               f"({1 / ratio:.2f}x)", "", None, f"{step.replays} replays")


def _amp_case(report: Report, device: torch.device, repeat: int, tmp: Path) -> None:
    case = CaffeCase("ResNet-50 b32", cases()[3].prototxt, {"data": (32, 3, 224, 224)}, 10)
    path = tmp / "resnet_amp.prototxt"
    write_timing_net(case, path)
    feed = _feed(case, device)
    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
    steps = []
    for nhwc in (False, True):
        run = _fwd_bwd(_load(path, "TRAIN", device, nhwc), feed, sync)

        def amp_step(run: Callable[[], None] = run) -> None:
            with torch.autocast("cuda", dtype=torch.float16):
                run()
        steps.append(amp_step)
    a, b, ratio = paired_ratio(steps[0], steps[1], repeat)
    report.add("gpu", "AMP ResNet-50 b32 fwd+bwd: NCHW -> channels_last",
               f"{a * 1e3:.1f} -> {b * 1e3:.1f} ms ({1 / ratio:.2f}x)", "", None)


def _pinned_case(report: Report, device: torch.device, repeat: int) -> None:
    from caffe2torch.runtime.pinned import CopyAhead

    host = [torch.randn(64, 3, 224, 224) for _ in range(2)]
    weight = torch.randn(3, 3, 3, 3, device=device)
    count = [0]

    def draw() -> dict[str, torch.Tensor]:
        count[0] += 1
        return {"data": host[count[0] % 2]}

    def compute(x: torch.Tensor) -> None:
        for _ in range(4):
            x = torch.nn.functional.conv2d(x, weight, padding=1)

    ahead = CopyAhead(draw, device)

    def plain() -> None:
        compute(draw()["data"].to(device))
        torch.cuda.synchronize(device)

    def overlapped() -> None:
        compute(ahead.next()["data"])
        torch.cuda.synchronize(device)

    a, b, ratio = paired_ratio(plain, overlapped, repeat)
    report.add("gpu", "pinned copy-ahead (64x3x224x224 + 4 convs)",
               f"{a * 1e3:.2f} -> {b * 1e3:.2f} ms ({1 / ratio:.2f}x)", "", None)


def run(report: Report, quick: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        _channels_last_cpu(report, quick, tmp)
        if not torch.cuda.is_available():
            report.add("gpu", "CUDA graph / AMP+channels_last / pinned copy-ahead",
                       "no CUDA device", "", None)
            return
        device = torch.device("cuda", 0)
        repeat = 10 if quick else 50
        _cuda_graph_case(report, device, repeat, tmp)
        _amp_case(report, device, repeat, tmp)
        _pinned_case(report, device, repeat)
