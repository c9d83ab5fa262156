"""Mixed precision for training (``caffe2torch train --amp``).

The TRAIN net's forward runs under torch.autocast: bfloat16 on the CPU, float16 on a GPU
with a GradScaler (the loss is scaled before backward; the gradients are unscaled before
Caffe's update, which is skipped, and the scale lowered, when they overflowed). Loss
layers (a ``*Loss`` type or a top with a loss weight) run outside autocast on float32
inputs, so the loss, its normalisation and its gradient are float32. Weights, update
history and snapshots stay float32; test nets run in float32 (scores comparable to a
float32 run).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch


def _without_autocast(forward: Callable[..., Any], device_type: str) -> Callable[..., Any]:
    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, enabled=False):
            return forward(*args, **kwargs)

    return run


def _float32_args(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: floating inputs as float32."""
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in args)


def loss_layer_names(net: Any) -> list[str]:
    """The layers of ``net`` that compute a loss: a ``*Loss`` type or a loss-weighted top."""
    weighted = set(net.loss_weights)
    return [ly.name for ly in net.ir.layers
            if ly.type.endswith("Loss") or any(t.name in weighted for t in ly.tops)]


class MixedPrecision:
    """Autocast and gradient scaling for one device."""

    def __init__(self, device: torch.device) -> None:
        self.device_type = device.type
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
        self.skipped = 0  # updates skipped for overflowing float16 gradients

    def prepare(self, net: Any) -> None:
        """Make the loss layers of ``net`` compute in float32 under autocast."""
        for name in loss_layer_names(net):
            module = net.module(name)
            module.register_forward_pre_hook(_float32_args)
            module.forward = _without_autocast(module.forward, self.device_type)

    def autocast(self, cache: bool = True) -> contextlib.AbstractContextManager[Any]:
        """``cache``: autocast's cache of cast weights (off while a CUDA graph captures)."""
        return torch.autocast(self.device_type, dtype=self.dtype, cache_enabled=cache)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: Any, rate: float) -> bool:
        """Unscale, then the update unless a gradient overflowed; True when it was applied."""
        if self.scaler is None:
            optimizer.step(rate=rate)
            return True
        before = self.scaler.get_scale()
        self.scaler.step(optimizer, rate=rate)
        self.scaler.update()
        applied = self.scaler.get_scale() >= before
        if not applied:
            self.skipped += 1
        return applied


__all__ = ["MixedPrecision", "loss_layer_names"]
