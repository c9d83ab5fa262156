"""Per-layer forward and backward times, as Caffe's ``caffe time`` reports them
(tools/caffe.cpp, time()): hooks on each layer module, synchronised with the device.

A layer's backward time is the time autograd spends running the nodes that layer's forward
created (found by walking back from its outputs to its inputs' nodes), each timed from its
pre-hook to its post-hook, as Caffe times each ``Layer::Backward`` call. Time a node spends
waiting in autograd's queue while other branches run is not counted, nor the accumulation
into param gradients."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
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
        self._input_nodes: dict[str, set[Any]] = {}
        self._node_start: dict[int, float] = {}
        self._keys = itertools.count()
        for name in self.names:
            module = net.module(name)
            module.register_forward_pre_hook(self._pre(name))
            module.register_forward_hook(self._post(name))

    def _now(self) -> float:
        self.sync()
        return time.perf_counter()

    def _pre(self, name: str) -> Callable[..., None]:
        def hook(module: Any, args: tuple[Any, ...]) -> None:
            # the nodes that made the inputs, taken now: an in-place layer replaces them
            self._input_nodes[name] = {a.grad_fn for a in _tensors(args)
                                       if a.grad_fn is not None}
            self._start[name] = self._now()
        return hook

    def _post(self, name: str) -> Callable[..., None]:
        def hook(module: Any, args: tuple[Any, ...], out: Any) -> None:
            self.forward[name] += self._now() - self._start[name]
            if torch.is_grad_enabled():
                for node in _layer_nodes(_tensors(out), self._input_nodes.pop(name, set())):
                    key = next(self._keys)
                    node.register_prehook(self._node_begins(key))
                    node.register_hook(self._node_ends(key, name))
        return hook

    def _node_begins(self, key: int) -> Callable[..., None]:
        def hook(grad_outputs: Any) -> None:
            self._node_start[key] = self._now()
        return hook

    def _node_ends(self, key: int, name: str) -> Callable[..., None]:
        def hook(grad_inputs: Any, grad_outputs: Any) -> None:
            begun = self._node_start.pop(key, None)
            if begun is not None:
                self.backward[name] += self._now() - begun
        return hook

    def start_backward(self) -> None:
        self._node_start.clear()

    def end_backward(self, started: float, ended: float) -> None:
        self._node_start.clear()


def _tensors(values: Any) -> list[torch.Tensor]:
    items = values if isinstance(values, (tuple, list)) else [values]
    return [v for v in items if isinstance(v, torch.Tensor)]


def _layer_nodes(outputs: Iterable[torch.Tensor], stop: set[Any]) -> list[Any]:
    """The autograd nodes between ``outputs`` and the nodes in ``stop`` (the layer's own),
    leaving out the param gradient accumulators."""
    found: list[Any] = []
    seen: set[Any] = set()
    pending = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while pending:
        node = pending.pop()
        if node in seen or node in stop or type(node).__name__ == "AccumulateGrad":
            continue
        seen.add(node)
        found.append(node)
        pending.extend(n for n, _ in node.next_functions if n is not None)
    return found


__all__ = ["LayerTimer"]
