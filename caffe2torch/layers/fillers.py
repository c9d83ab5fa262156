"""Caffe's weight fillers (include/caffe/filler.hpp) as functions returning float32 tensors.

``constant`` and ``bilinear`` are exact; the random fillers draw from torch's generator with
Caffe's distribution and scale (Caffe's own RNG stream is not reproduced).

Fan rules are Caffe's: ``fan_in = count / shape[0]`` and ``fan_out = count / shape[1]``
(``count`` for a 1-axis blob), in integer arithmetic. ``variance_norm`` picks fan_in
(default), fan_out, or their average for ``xavier`` (U(-a, a), a = sqrt(3 / n)) and ``msra``
(N(0, sqrt(2 / n))).

``gaussian_unitball`` (happynear/caffe-windows, NormFace) draws N(0, 1) and scales each of
the ``shape[0]`` rows to unit L2 norm: row / sqrt(|row|^2 + 1e-12).
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from caffe2torch.errors import BuildError
from caffe2torch.limits import check_blob

FILLER_TYPES = (
    "constant",
    "uniform",
    "gaussian",
    "positive_unitball",
    "xavier",
    "msra",
    "bilinear",
    "gaussian_unitball",
)

# FillerParameter.VarianceNorm
_FAN_IN, _FAN_OUT, _AVERAGE = 0, 1, 2

class PendingFills:
    """Fills that :func:`make_filled` postponed: each is an uninitialised tensor and
    the draw that fills it. :meth:`run` draws, in build order, into every tensor not in
    ``skip`` (the blobs a caffemodel has overwritten)."""

    def __init__(self) -> None:
        self._fills: list[tuple[torch.Tensor, Callable[[], torch.Tensor]]] = []

    def add(self, tensor: torch.Tensor, draw: Callable[[], torch.Tensor]) -> None:
        self._fills.append((tensor, draw))

    def storages(self) -> set[int]:
        """Data pointers of the tensors still waiting for their draw."""
        return {t.untyped_storage().data_ptr() for t, _ in self._fills}

    def extend(self, other: PendingFills) -> None:
        self._fills.extend(other._fills)
        other._fills.clear()

    def run(self, skip: Collection[int] = ()) -> int:
        """Fill every pending tensor whose storage is not in ``skip``; returns how many
        draws were skipped."""
        skipped = 0
        with torch.no_grad():
            for tensor, draw in self._fills:
                if tensor.untyped_storage().data_ptr() in skip:
                    skipped += 1
                else:
                    tensor.copy_(draw())
        self._fills.clear()
        return skipped


_PENDING: contextvars.ContextVar[PendingFills | None] = contextvars.ContextVar(
    "caffe2torch_pending_fills", default=None
)


@contextmanager
def deferred_fills(pending: PendingFills | None = None) -> Iterator[PendingFills | None]:
    """Within the block, fillers hand out uninitialised tensors and queue their
    draws on the yielded :class:`PendingFills` (a new one unless given); the caller must
    ``run`` it. ``deferred_fills(None)`` inside such a block makes fillers eager again."""
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)


def active_pending_fills() -> PendingFills | None:
    """The PendingFills that make_filled queues on now, if any."""
    return _PENDING.get()


class _Defaults:
    """FillerParameter's defaults (a missing filler message is ``constant 0``)."""

    type = "constant"
    value = 0.0
    min = 0.0
    max = 1.0
    mean = 0.0
    std = 1.0
    sparse = -1
    variance_norm = _FAN_IN


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """Caffe's (fan_in, fan_out): count / shape[0] and count / shape[1] (count when 1-D)."""
    count = math.prod(shape)
    fan_in = count // shape[0] if shape and shape[0] else count
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else count
    return fan_in, fan_out


def _variance_n(filler: Any, shape: Sequence[int]) -> float:
    fan_in, fan_out = fans(shape)
    norm = filler.variance_norm
    if norm == _AVERAGE:
        return (fan_in + fan_out) / 2.0
    if norm == _FAN_OUT:
        return float(fan_out)
    return float(fan_in)


def _empty(shape: tuple[int, ...], device: torch.device | str | None) -> torch.Tensor:
    return torch.empty(shape, dtype=torch.float32, device=device)


def _no_sparse(filler: Any) -> None:
    # Caffe: every filler but gaussian CHECKs sparse == -1.
    if filler.sparse != -1:
        raise BuildError(
            f'the "{filler.type}" filler does not support sparse ({filler.sparse})',
            hint="only the gaussian filler takes `sparse`",
        )


def make_filled(
    shape: Sequence[int],
    filler_param: Any = None,
    generator: torch.Generator | None = None,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A new float32 tensor of ``shape`` filled as Caffe's ``filler_param`` (a
    FillerParameter; None means Caffe's default, constant 0).

    Inside :func:`deferred_fills` the filler only checks its parameters and returns an
    uninitialised tensor (memory the OS has not even touched yet); the fill happens when
    the pending fills run, or never, for a tensor that a caffemodel overwrites."""
    filler = _Defaults() if filler_param is None else filler_param
    shape = tuple(int(d) for d in shape)
    check_blob(shape)  # before allocating: a prototxt may ask for terabytes
    _check(filler, shape)
    pending = _PENDING.get()
    if pending is not None:
        out = _empty(shape, device)
        pending.add(out, lambda: _draw(filler, shape, generator, device))
        return out
    return _draw(filler, shape, generator, device)


def _check(filler: Any, shape: tuple[int, ...]) -> None:
    """The filler's own CHECKs, so that a bad filler fails at build time even when its
    draw is deferred."""
    kind = filler.type
    if kind == "gaussian":
        sparse = int(filler.sparse)
        if sparse < -1:
            raise BuildError(f"gaussian filler: sparse must be >= -1, got {sparse}")
        if sparse >= 0 and not shape:
            raise BuildError("gaussian filler: sparse needs a blob with at least one axis")
        if sparse >= 0 and sparse > shape[0]:
            raise BuildError(
                f"gaussian filler: sparse ({sparse}) exceeds the number of outputs ({shape[0]})"
            )
        return
    if kind not in FILLER_TYPES:
        raise BuildError(
            f'unknown filler type "{kind}"',
            hint="Caffe's fillers are: " + ", ".join(FILLER_TYPES),
        )
    _no_sparse(filler)
    if kind == "uniform" and filler.min > filler.max:
        raise BuildError(f"uniform filler: min ({filler.min}) > max ({filler.max})")
    if kind == "bilinear" and (len(shape) != 4 or shape[2] != shape[3]):
        raise BuildError(f"the bilinear filler needs a 4-D blob with a square kernel, got {shape}")


def _draw(
    filler: Any,
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    kind = filler.type
    if kind == "gaussian":
        return _gaussian(filler, shape, generator, device)
    if kind == "constant":
        return torch.full(shape, float(filler.value), dtype=torch.float32, device=device)
    if kind == "uniform":
        return _empty(shape, device).uniform_(
            float(filler.min), float(filler.max), generator=generator
        )
    if kind == "positive_unitball":
        return _positive_unitball(shape, generator, device)
    if kind == "gaussian_unitball":
        return _gaussian_unitball(shape, generator, device)
    if kind == "xavier":
        scale = math.sqrt(3.0 / _variance_n(filler, shape))
        return _empty(shape, device).uniform_(-scale, scale, generator=generator)
    if kind == "msra":
        std = math.sqrt(2.0 / _variance_n(filler, shape))
        return _empty(shape, device).normal_(0.0, std, generator=generator)
    return _bilinear(shape, device)


def fill(
    filler: Any,
    shape: Sequence[int],
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`make_filled` with the filler first (kept for existing callers)."""
    return make_filled(shape, filler, generator, device=device)


def _gaussian(
    filler: Any,
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    out = _empty(shape, device).normal_(float(filler.mean), float(filler.std), generator=generator)
    sparse = int(filler.sparse)
    if sparse >= 0:
        # Caffe keeps each weight with probability sparse / shape[0] (a Bernoulli mask).
        keep = sparse / shape[0] if shape[0] else 0.0
        mask = torch.empty_like(out).bernoulli_(keep, generator=generator)
        out.mul_(mask)
    return out


def _per_row(out: torch.Tensor, divisor: Any) -> torch.Tensor:
    """``out`` with each of its shape[0] rows divided by ``divisor(row block)``."""
    if not out.shape or out.numel() == 0:
        return out
    rows = out.reshape(out.shape[0], -1)
    return (rows / divisor(rows)).reshape(out.shape)


def _positive_unitball(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None
) -> torch.Tensor:
    # U(0, 1), then every row (shape[0] rows of count / shape[0]) divided by its sum.
    out = _empty(shape, device).uniform_(0.0, 1.0, generator=generator)
    return _per_row(out, lambda rows: rows.sum(dim=1, keepdim=True))


def _gaussian_unitball(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None
) -> torch.Tensor:
    # NormFace's GaussianUnitBallFiller: N(0, 1), then each row (fan_in = count / shape[0]
    # values) scaled by 1 / sqrt(sum of squares + 1e-12).
    out = _empty(shape, device).normal_(0.0, 1.0, generator=generator)
    return _per_row(out, lambda rows: torch.sqrt((rows * rows).sum(dim=1, keepdim=True) + 1e-12))


def _bilinear(shape: tuple[int, ...], device: torch.device | str | None) -> torch.Tensor:
    # Caffe's BilinearFiller: 4-D, square kernel; the same upsampling kernel in every (n, c):
    # f = ceil(K / 2), c = (K - 1) / (2 f), w(x, y) = (1 - |x / f - c|) (1 - |y / f - c|).
    k = shape[3]
    f = math.ceil(k / 2.0)
    # Caffe computes in float32 (Dtype); so does this.
    c = torch.tensor((k - 1) / (2.0 * f), dtype=torch.float32, device=device)
    pos = torch.arange(k, dtype=torch.float32, device=device)
    line = 1 - torch.abs(pos / f - c)
    kernel = line[:, None] * line[None, :]
    return kernel.expand(shape).contiguous()
