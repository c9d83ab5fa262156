"""A training pass replayed as one captured CUDA graph (``caffe2torch train --cuda-graph``,
``Solver(..., cuda_graph=True)``).

On a GPU a small net's forward/backward is bound by launching its many kernels from
Python; a CUDA graph captures the pass once and replays it with one launch. Opt-in, and
used only where it is sound (:func:`refusal` states the rule; otherwise the solver logs
the reason and runs eagerly):

- the device is a GPU with CUDA graphs; no Python layer (user code may read values on
  the host, which a replay would not redo); not compiled (torch.compile has its own
  ``mode="reduce-overhead"`` graphs);
- fixed shapes: the pass is captured for the batch shapes of its first captured pass; a
  batch of other shapes runs eagerly (logged once).

Caffe's semantics kept: the first ``WARMUP`` passes run eagerly on a side stream (lazy
initialisation, cuDNN's algorithm search, the GradScaler's scale tensor), then the pass
is captured with every diff cleared, so each replay is Net::ClearParamDiffs + Forward +
Backward writing the diffs into the same tensors (shared params sum within the graph).
With ``iter_size`` > 1 the diffs of the earlier passes are kept aside before a replay and
added after it (Caffe's diff += new, the same float sum). The solver's update, the loss
check and the display run after the passes, in Python, on those diffs, as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

WARMUP = 3  # eager passes before the capture

PassFn = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def refusal(device: torch.device, net: Any) -> str | None:
    """Why a captured pass cannot be used for ``net`` on ``device`` (None: it can)."""
    if device.type != "cuda":
        return f"the device is {device.type}, not a GPU"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if not hasattr(torch.cuda, "CUDAGraph") or not hasattr(torch.cuda, "graph"):
        return "this torch has no CUDA graphs"
    if getattr(net, "compiled", None) is not None:
        return "the net is compiled (torch.compile's mode='reduce-overhead' makes its own graphs)"
    python = [ly.name for ly in net.ir.layers if ly.type == "Python"]
    if python:
        return f"Python layer '{python[0]}' may read values on the host, which a replay skips"
    return None


class TorchCudaGraphs:
    """torch.cuda's graph API, as :class:`CapturedStep` uses it."""

    def __init__(self) -> None:
        self.stream = torch.cuda.Stream()
        self.pool: Any = None

    @contextlib.contextmanager
    def side_stream(self) -> Iterator[None]:
        """Run the block on a side stream ordered after (and before) the current one."""
        current = torch.cuda.current_stream()
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            yield
        current.wait_stream(self.stream)

    def capture(self, fn: Callable[[], Any]) -> tuple[Callable[[], None], Any]:
        """Capture ``fn()`` (nothing runs); returns (replay, the tensors ``fn`` returned,
        which each replay rewrites)."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            result = fn()
        return graph.replay, result


def _signature(batch: dict[str, torch.Tensor]) -> tuple[Any, ...]:
    return tuple((k, tuple(v.shape), v.dtype) for k, v in batch.items())


class CapturedStep:
    """One forward/backward pass (``fn``: batch -> (float32 loss, outputs), backward done)
    of a net whose learnable tensors are ``params``, captured after WARMUP eager passes
    and replayed from then on."""

    def __init__(self, fn: PassFn, params: list[torch.Tensor], log: Any,
                 graphs: Any = None, warmup: int = WARMUP) -> None:
        self.fn = fn
        self.params = params
        self.log = log
        self.graphs = graphs if graphs is not None else TorchCudaGraphs()
        self.warmup = warmup
        self.passes = 0  # eager passes run so far
        self.replays = 0
        self._replay: Callable[[], None] | None = None
        self._inputs: dict[str, torch.Tensor] = {}
        self._signature: tuple[Any, ...] | None = None
        self._result: Any = None
        self._sums: list[torch.Tensor | None] = []
        self._warned = False
        self.failed: str | None = None  # why the capture failed: every pass runs eagerly

    def run(self, batch: dict[str, torch.Tensor], first: bool
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One pass on ``batch``; ``first``: the first of the iteration (diffs cleared)."""
        if self.failed is not None:
            return self.fn(batch)
        if self._replay is None and self.passes < self.warmup:
            self.passes += 1
            with self.graphs.side_stream():
                return self.fn(batch)
        if self._signature is not None and _signature(batch) != self._signature:
            if not self._warned:
                self._warned = True
                self.log.warning(f"CUDA graph: batch shapes {_signature(batch)} differ from "
                                 f"the captured {self._signature}: such passes run eagerly")
            return self.fn(batch)
        if not first:  # keep the earlier passes' diffs: the replay rewrites the diffs
            self._keep_sums()
        if self._replay is None:
            try:
                self._capture(batch)
            except RuntimeError as e:  # e.g. a layer synchronised with the host
                return self._give_up(batch, first, e)
        else:
            for name, tensor in batch.items():
                self._inputs[name].copy_(tensor, non_blocking=True)
        assert self._replay is not None
        self._replay()
        self.replays += 1
        loss, outputs, grads = self._result
        for p, g, s in zip(self.params, grads, self._sums if not first else
                           [None] * len(grads)):
            if g is None:
                continue
            if s is not None:
                g.add_(s)
            p.grad = g
        return loss, outputs

    def _keep_sums(self) -> None:
        if not self._sums:
            self._sums = [None] * len(self.params)
        for i, p in enumerate(self.params):
            if p.grad is None:
                self._sums[i] = None
                continue
            held = self._sums[i]
            if held is None or held.shape != p.grad.shape:
                held = torch.empty_like(p.grad)
            held.copy_(p.grad)
            self._sums[i] = held

    def _give_up(self, batch: dict[str, torch.Tensor], first: bool, error: Exception
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.failed = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.log.warning(f"CUDA graph capture failed ({self.failed}): training runs eagerly")
        self._replay, self._result, self._signature = None, None, None
        for p, held in zip(self.params, self._sums):  # the diffs as before the capture
            p.grad = None if first or held is None else held.clone()
        return self.fn(batch)

    def _capture(self, batch: dict[str, torch.Tensor]) -> None:
        self._inputs = {k: v.clone() for k, v in batch.items()}
        self._signature = _signature(batch)
        if not self._sums:
            self._sums = [None] * len(self.params)

        def captured() -> Any:
            for p in self.params:  # ClearParamDiffs: the graph writes every diff afresh
                p.grad = None
            loss, outputs = self.fn(self._inputs)
            return loss, outputs, [p.grad for p in self.params]

        self._replay, self._result = self.graphs.capture(captured)
        self.log.info(f"CUDA graph: training pass captured after {self.passes} eager passes",
                      "solver.cpp:0")


__all__ = ["WARMUP", "CapturedStep", "TorchCudaGraphs", "refusal"]
