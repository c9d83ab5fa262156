"""channels_last: the net's 4-D blobs laid out NHWC in memory (shapes, and so every blob's
values, stay Caffe's NCHW; only the strides change).

``load_net(..., channels_last=True)``, ``Solver(..., channels_last=True)`` and
``--channels-last`` on ``train``, ``test`` and ``time`` call :func:`use_channels_last`:
the 4-D params and buffers (convolution weights) are re-laid out once, and every 4-D
floating input is made channels_last as it enters the net, so that oneDNN (CPU) and
cuDNN (GPU, where tensor cores want NHWC under float16) run their NHWC kernels and keep
the layout from one convolution to the next. Layers that need NCHW order (Flatten,
Reshape, InnerProduct's view of a blob as rows) reshape, which copies where it must.

Rule for the default: on a GPU with ``--amp`` the solver turns it on for a net with a
4-D input (tensor-core convolutions are NHWC); elsewhere it stays off unless asked for
(measured on the CPU in docs/benchmarks.md: it helps ResNet-style nets, not all).
Numerics: the same operations in another memory order, so the results differ from
NCHW's by float rounding only, within the golden tolerances.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

CHANNELS_LAST = torch.channels_last


def as_channels_last(t: torch.Tensor) -> torch.Tensor:
    """``t`` laid out NHWC when it is a 4-D floating tensor; else ``t`` itself."""
    if t.dim() == 4 and t.is_floating_point():
        return t.contiguous(memory_format=CHANNELS_LAST)
    return t


def inputs_channels_last(feed: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs of one forward, their 4-D floating tensors laid out NHWC."""
    return {k: as_channels_last(v) if isinstance(v, torch.Tensor) else v
            for k, v in feed.items()}


def has_4d_input(net: Any) -> bool:
    """Whether ``net`` (a CaffeNet) takes a 4-D blob (an image batch)."""
    shapes = net.blob_shapes
    return any(len(shapes.get(name) or ()) == 4 for name in net.inputs)


def channels_last_default(amp: bool, device: torch.device, net: Any) -> bool:
    """The solver's choice when none is given: on under AMP on a GPU for a net that takes
    an image batch (tensor-core convolutions run NHWC), off elsewhere."""
    return amp and device.type == "cuda" and has_4d_input(net)


def use_channels_last(net: Any, enabled: bool = True) -> Any:
    """Lay ``net``'s 4-D params and buffers out NHWC and feed it NHWC from now on
    (``enabled=False``: inputs as given again; params keep their layout, which changes
    speed only). Returns ``net``."""
    if not hasattr(net, "memory_format"):
        from caffe2torch.errors import CaffeError

        raise CaffeError(f"use_channels_last takes a CaffeNet, got {type(net).__name__}")
    net.memory_format = CHANNELS_LAST if enabled else None
    if enabled:
        with torch.no_grad():
            for tensor in [*net.parameters(), *net.buffers()]:
                if tensor.dim() == 4 and tensor.is_floating_point():
                    # in place of .data: the Parameter (and every net sharing it) stays
                    tensor.data = tensor.data.contiguous(memory_format=CHANNELS_LAST)
    return net


__all__ = ["as_channels_last", "channels_last_default", "has_4d_input", "inputs_channels_last",
           "use_channels_last"]
