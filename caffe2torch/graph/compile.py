"""Compiled execution: a CaffeNet's fx GraphModules run through torch.compile (inductor).

``load_net(..., compile=True)``, ``Solver(..., compile=True)`` and ``--compile`` on
``train``, ``test`` and ``time`` call :func:`compile_net`. Each GraphModule the net runs
(one per set of requested blobs) is compiled once, at its first call, and kept:

- TRAIN and TEST are separate nets with separate graphs, so switching between them (the
  solver's test passes) never recompiles either; a net's phase is fixed at build time, so
  no graph depends on ``train()``/``eval()``.
- A batch change recompiles once: torch.compile's automatic dynamic shapes mark the
  dimension that changed as symbolic and the second graph serves every later size
  (``dynamic=True`` compiles the symbolic graph from the start).

Rule for the default: compilation stays off unless asked for. On the CPU the compile
itself takes tens of seconds to minutes (inductor generates and builds C++ for every
fused kernel) while the nets here spend their time in oneDNN convolutions and GEMMs that
eager already calls, so it pays off only on long runs and is measured per net
(``python -m bench --only caffe --caffe PATH --compile``); on a GPU, where the fused
elementwise kernels save most, turn it on for training runs of more than a few hundred
iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import fx

from caffe2torch.errors import CaffeError

Runner = Callable[..., Any]


class CompiledGraphs:
    """The compiled runner of each GraphModule of one net, made at first use."""

    def __init__(self, backend: str | Callable[..., Any] = "inductor", mode: str | None = None,
                 dynamic: bool | None = None) -> None:
        self.backend = backend
        self.mode = mode
        self.dynamic = dynamic
        self._runners: dict[int, tuple[fx.GraphModule, Runner]] = {}

    def runner(self, gm: fx.GraphModule) -> Runner:
        """The compiled callable for ``gm`` (the same one on every call)."""
        held = self._runners.get(id(gm))
        if held is None or held[0] is not gm:
            compiled = torch.compile(gm, backend=self.backend, mode=self.mode,
                                     dynamic=self.dynamic)
            held = (gm, compiled)
            self._runners[id(gm)] = held
        return held[1]


def compile_net(net: Any, backend: str | Callable[..., Any] = "inductor",
                mode: str | None = None,
                dynamic: bool | None = None) -> Any:
    """Run ``net`` (a CaffeNet) compiled from now on; returns it. ``backend``, ``mode``
    and ``dynamic`` are torch.compile's."""
    if not hasattr(net, "compiled"):
        raise CaffeError(f"compile_net takes a CaffeNet, got {type(net).__name__}")
    try:
        import torch._dynamo  # noqa: F401  (fails early where torch.compile is unavailable)
    except ImportError as e:  # pragma: no cover - every supported torch has it
        raise CaffeError(f"torch.compile is not available here ({e})",
                         hint="run without --compile") from None
    net.compiled = CompiledGraphs(backend, mode, dynamic)
    return net
