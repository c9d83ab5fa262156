"""The captured training pass (solver.cuda_graph) with CUDA faked: the rule for using it,
the order of torch.cuda's graph calls, and training that matches eager exactly (iter_size
accumulation, shared params, the update after the passes) with a fake graph API whose
capture runs nothing and whose replay computes the pass into the captured tensors."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from caffe2torch.layers.grad_buffers import GradBuffers
from caffe2torch.solver.cuda_graph import CapturedStep, TorchCudaGraphs, refusal
from caffe2torch.solver.solver import get_solver
from tests.solver.tiny import write_data

NET = """name: "shared"
layer { name: "data" type: "HDF5Data" top: "data" top: "label"
  hdf5_data_param { source: "train.txt" batch_size: 4 } }
layer { name: "a" type: "InnerProduct" bottom: "data" top: "a"
  param { name: "w" } param { name: "b" }
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 }
    bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
layer { name: "a2" type: "InnerProduct" bottom: "a" top: "a2"
  param { name: "w" } param { name: "b" }
  inner_product_param { num_output: 5 } }
layer { name: "ip" type: "InnerProduct" bottom: "a2" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

SOLVER = """net: "net.prototxt"
base_lr: 0.05
momentum: 0.9
weight_decay: 0.001
lr_policy: "fixed"
max_iter: 8
display: 0
iter_size: {iter_size}
random_seed: 3
"""


def _tree(x: Any, fn: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return fn(x)
    if isinstance(x, dict):
        return {k: _tree(v, fn) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_tree(v, fn) for v in x)
    return x


def _pairs(a: Any, b: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(a, torch.Tensor):
        return [(a, b)]
    if isinstance(a, dict):
        return [p for k in a for p in _pairs(a[k], b[k])]
    if isinstance(a, (list, tuple)):
        return [p for x, y in zip(a, b) for p in _pairs(x, y)]
    return []


class ReplayingGraphs:
    """A CUDA graph's contract on the CPU: capture runs nothing the caller can rely on
    (the tensors it hands back hold NaN), each replay recomputes them in place."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def side_stream(self) -> Any:
        self.calls.append("side")
        return torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t)

    def capture(self, fn: Any) -> tuple[Any, Any]:
        self.calls.append("capture")
        static = _tree(fn(), lambda t: torch.full_like(t, float("nan")))

        def replay() -> None:
            self.calls.append("replay")
            fresh = fn()
            with torch.no_grad():
                for dst, src in _pairs(static, fresh):
                    dst.copy_(src)

        return replay, static


def _train(folder: Path, iter_size: int, graphs: ReplayingGraphs | None,
           monkeypatch: pytest.MonkeyPatch) -> tuple[list[torch.Tensor], Any]:
    (folder / "net.prototxt").write_text(NET)
    (folder / "solver.prototxt").write_text(SOLVER.format(iter_size=iter_size))
    monkeypatch.chdir(folder)
    if graphs is not None:
        monkeypatch.setattr("caffe2torch.solver.solver.refusal", lambda device, net: None)
        real = CapturedStep

        def made(fn: Any, params: Any, log: Any) -> CapturedStep:
            return real(fn, params, log, graphs=graphs, warmup=2)

        monkeypatch.setattr("caffe2torch.solver.solver.CapturedStep", made)
    solver = get_solver("solver.prototxt", log=io.StringIO(), cuda_graph=graphs is not None)
    # the captured pass runs autograd's own gradients (no kept diffs written by the layers,
    # whose in-GEMM sums round differently): so does the eager run compared with it
    solver.grad_buffers = GradBuffers()
    solver.solve()
    return [p.detach().clone() for p in solver.net.parameters()], solver


@pytest.mark.parametrize("iter_size", [1, 2])
def test_replayed_training_matches_eager(tmp_path: Path, iter_size: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_data(tmp_path)
    eager, _ = _train(tmp_path, iter_size, None, monkeypatch)
    graphs = ReplayingGraphs()
    replayed, solver = _train(tmp_path, iter_size, graphs, monkeypatch)
    passes = 8 * iter_size
    # two eager warm-up passes on the side stream, one capture, a replay for every other
    assert graphs.calls == ["side", "side", "capture"] + ["replay"] * (passes - 2)
    assert solver.captured is not None and solver.captured.replays == passes - 2
    for a, b in zip(eager, replayed):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_batch_of_other_shape_runs_eagerly_once_logged() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    calls: list[tuple[int, ...]] = []

    def fn(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        calls.append(tuple(batch["x"].shape))
        loss = (batch["x"].sum(0) * weight).sum()
        loss.backward()
        return loss.detach(), {}

    graphs = ReplayingGraphs()
    log = SimpleNamespace(lines=[], info=lambda *a: None)
    log.warning = log.lines.append
    step = CapturedStep(fn, [weight], log, graphs=graphs, warmup=0)
    step.run({"x": torch.ones(2, 3)}, True)
    weight.grad = None
    step.run({"x": torch.ones(4, 3)}, True)
    weight.grad = None
    step.run({"x": torch.ones(5, 3)}, True)
    assert graphs.calls == ["capture", "replay"]
    assert len(log.lines) == 1 and "differ from the captured" in log.lines[0]
    torch.testing.assert_close(weight.grad, torch.full((3,), 5.0))


def test_refusal_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    net = SimpleNamespace(compiled=None, ir=SimpleNamespace(layers=[]))
    assert "not a GPU" in str(refusal(torch.device("cpu"), net))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert refusal(torch.device("cuda"), net) == "CUDA is not available"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert refusal(torch.device("cuda"), net) is None
    net.compiled = object()
    assert "compiled" in str(refusal(torch.device("cuda"), net))
    net.compiled = None
    net.ir.layers = [SimpleNamespace(name="py", type="Python")]
    assert "Python layer 'py'" in str(refusal(torch.device("cuda"), net))
    monkeypatch.delattr(torch.cuda, "CUDAGraph")
    assert "no CUDA graphs" in str(refusal(torch.device("cuda"), net))


def test_solver_on_cpu_logs_why_it_is_eager(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_data(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER.format(iter_size=1))
    monkeypatch.chdir(tmp_path)
    log = io.StringIO()
    solver = get_solver("solver.prototxt", log=log, cuda_graph=True)
    assert solver.captured is None
    assert "CUDA graph not used: the device is cpu, not a GPU" in log.getvalue()


def test_torch_graph_api_call_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Stream:
        def __init__(self, name: str = "side") -> None:
            self.name = name

        def wait_stream(self, other: Any) -> None:
            calls.append(f"{self.name} waits {other.name}")

    class Ctx:
        def __init__(self, what: str) -> None:
            self.what = what

        def __enter__(self) -> None:
            calls.append(f"enter {self.what}")

        def __exit__(self, *exc: Any) -> None:
            calls.append(f"exit {self.what}")

    class Graph:
        def replay(self) -> None:
            calls.append("replay")

    current = Stream("current")
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: current)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: Ctx(f"stream {s.name}"))
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)

    def graph(g: Any, stream: Any = None) -> Ctx:
        assert isinstance(g, Graph) and stream.name == "side"
        return Ctx("capture")

    monkeypatch.setattr(torch.cuda, "graph", graph)
    api = TorchCudaGraphs()
    with api.side_stream():
        calls.append("warm-up pass")
    replay, result = api.capture(lambda: calls.append("captured pass") or "out")
    replay()
    assert result == "out"
    assert calls == ["side waits current", "enter stream side", "warm-up pass",
                     "exit stream side", "current waits side", "enter capture",
                     "captured pass", "exit capture", "replay"]



def test_failed_capture_falls_back_to_eager_keeping_the_earlier_diffs() -> None:
    weight = torch.nn.Parameter(torch.ones(3))

    def fn(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = (batch["x"].sum(0) * weight).sum()
        loss.backward()
        return loss.detach(), {}

    class Failing(ReplayingGraphs):
        def capture(self, fn: Any) -> tuple[Any, Any]:
            self.calls.append("capture")
            fn()  # the pass ran part way (grads cleared) before the error
            raise RuntimeError("operation not permitted when stream is capturing\nmore")

    graphs = Failing()
    log = SimpleNamespace(lines=[], info=lambda *a: None)
    log.warning = log.lines.append
    step = CapturedStep(fn, [weight], log, graphs=graphs, warmup=1)
    step.run({"x": torch.ones(2, 3)}, True)  # warm-up: grad 2
    step.run({"x": torch.ones(3, 3)}, False)  # iter_size's second pass: capture fails
    torch.testing.assert_close(weight.grad, torch.full((3,), 5.0))
    assert step.failed == "operation not permitted when stream is capturing"
    assert log.lines == ["CUDA graph capture failed (operation not permitted when stream is "
                         "capturing): training runs eagerly"]
    weight.grad = None
    step.run({"x": torch.ones(4, 3)}, True)
    torch.testing.assert_close(weight.grad, torch.full((3,), 4.0))
    assert graphs.calls == ["side", "capture"]
