"""Per-layer forward and backward times, as Caffe's ``caffe time`` reports them
(tools/caffe.cpp, time()): hooks on each layer module, synchronised with the device."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


class LayerTimer:
    """Forward and backward seconds per layer, accumulated over passes."""

    def __init__(self, net: Any, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.names = list(dict.fromkeys(net.layer_names))
        self.forward = dict.fromkeys(self.names, 0.0)
        self.backward = dict.fromkeys(self.names, 0.0)
        self._start: dict[str, float] = {}
        self._grad_out: dict[str, float] = {}
        self._grad_in: dict[str, float] = {}
        for name in self.names:
            module = net.module(name)
            module.register_forward_pre_hook(self._pre(name))
            module.register_forward_hook(self._post(name))

    def _now(self) -> float:
        self.sync()
        return time.perf_counter()

    def _pre(self, name: str) -> Callable[..., None]:
        def hook(module: Any, args: tuple[Any, ...]) -> None:
            for a in args:
                if isinstance(a, torch.Tensor) and a.requires_grad:
                    a.register_hook(self._mark(self._grad_in, name, max))
            self._start[name] = self._now()
        return hook

    def _post(self, name: str) -> Callable[..., None]:
        def hook(module: Any, args: tuple[Any, ...], out: Any) -> None:
            self.forward[name] += self._now() - self._start[name]
            outs = out if isinstance(out, (tuple, list)) else [out]
            for o in outs:
                if isinstance(o, torch.Tensor) and o.requires_grad:
                    o.register_hook(self._mark(self._grad_out, name, min))
        return hook

    def _mark(self, table: dict[str, float], name: str, pick: Callable[..., float]
              ) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            now = self._now()
            table[name] = pick(table[name], now) if name in table else now
        return hook

    def start_backward(self) -> None:
        self._grad_out.clear()
        self._grad_in.clear()

    def end_backward(self, started: float, ended: float) -> None:
        for name in self.names:
            if name not in self._grad_out:
                continue
            begin = self._grad_out[name]
            end = self._grad_in.get(name, ended)
            self.backward[name] += max(0.0, end - max(begin, started))


__all__ = ["LayerTimer"]
