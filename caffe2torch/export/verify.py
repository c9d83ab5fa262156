"""Checking an exported ONNX file against the PyTorch net it came from.

What a check does (``verify_export``):

* runs onnxruntime and PyTorch on the same inputs at two batch sizes (1 and 3 for a
  symbolic batch axis, so both a single image and a batch that differs from the traced
  one are seen; the fixed size twice with other inputs otherwise);
* the inputs look like the net's data: an image-shaped input (N x 1|3 x H x W) gets a
  smooth picture with edges in Caffe's usual range (0-255 minus a mean: about -120..135)
  for the first item and uniform noise in [-1, 1) for the others; an Embed input gets
  valid indices; anything else uniform noise;
* reports, per output, the largest absolute difference and the largest difference relative
  to the output's magnitude (``max |a - b| / max |b|``);
* warns when the weights are fillers (no caffemodel) or a layer's weights are all zero or
  all one value, and when an output is constant (the same value everywhere: a comparison
  of such outputs proves little);
* refuses to vouch for an output with no finite value (all NaN or infinite) in PyTorch or
  onnxruntime: NaN against NaN compares as agreeing, so such a check is a failure with a
  warning naming the output (fillers or an input without the net's mean and scale can
  overflow);
* never raises for a model that fails to run: the failure is the result.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from caffe2torch.export.deploy import reset_states
from caffe2torch.graph import CaffeNet

# relative tolerance of float32 (same ops in another order) and of float16 exports
RTOL_FLOAT32 = 1e-4
RTOL_FLOAT16 = 2e-2
ATOL = 1e-5


@dataclass
class OutputCheck:
    """One output at one batch size."""

    name: str
    batch: int
    max_abs: float
    max_rel: float  # max_abs / max |PyTorch|
    scale: float  # max |PyTorch|
    error: str | None = None  # the shape or run failure, if any
    # which side had no finite value: "all NaN from PyTorch and onnxruntime", ...
    nonfinite: str | None = None

    def ok(self, rtol: float, atol: float = ATOL) -> bool:
        return (self.error is None and self.nonfinite is None
                and self.max_abs <= rtol * self.scale + atol)


@dataclass
class VerifyResult:
    """Every output at every batch size, and what the comparison cannot vouch for."""

    checks: list[OutputCheck] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rtol: float = RTOL_FLOAT32

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok(self.rtol) for c in self.checks)

    def failures(self) -> list[OutputCheck]:
        return [c for c in self.checks if not c.ok(self.rtol)]

    def worst(self) -> dict[str, tuple[float, float]]:
        """Per output: (largest max_abs, largest scale) over the batch sizes."""
        out: dict[str, tuple[float, float]] = {}
        for c in self.checks:
            a, s = out.get(c.name, (0.0, 0.0))
            out[c.name] = (max(a, c.max_abs), max(s, c.scale))
        return out


def _image_like(shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    """A smooth picture with a few hard edges, mean-subtracted 0-255 values."""
    c, h, w = shape
    yy = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    xx = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    planes = []
    for k in range(c):
        phase = float(torch.rand((), generator=gen)) * 6.28
        wave = 0.5 + 0.5 * torch.sin(6.0 * xx + 4.0 * yy * (k + 1) + phase)
        disc = ((xx - 0.4) ** 2 + (yy - 0.55) ** 2 < 0.06).float()
        planes.append(255.0 * (0.6 * wave + 0.4 * disc) - 120.0 + 5.0 * k)
    return torch.stack(planes)


def data_like_inputs(net: CaffeNet, batch: int | None = None, seed: int = 0,
                     index_inputs: dict[str, int] | None = None, images: bool = True,
                     ) -> list[torch.Tensor]:
    """Inputs of the net's shapes (batch replaced when given) that look like data (see the
    module doc); ``images=False``: uniform in [-1, 1) only."""
    gen = torch.Generator().manual_seed(seed)
    index_inputs = index_inputs or {}
    out = []
    for name in net.inputs:
        shape = list(net.blob_shapes[name])
        if batch is not None and shape:
            shape[0] = batch
        if name in index_inputs:
            out.append(torch.randint(0, index_inputs[name], shape, generator=gen).float())
            continue
        value = torch.rand(shape, generator=gen) * 2 - 1
        if images and len(shape) == 4 and shape[1] in (1, 3) and shape[2] >= 8 \
                and shape[3] >= 8:
            value[0] = _image_like(shape[1:], gen)
        out.append(value)
    return out


def weight_warnings(net: CaffeNet, from_fillers: bool) -> list[str]:
    """Why a comparison on these weights may prove little."""
    out = []
    if from_fillers:
        out.append("no weights given: the check runs on the fillers' values, not a trained net")
    flat = []
    for layer in net.ir.layers:
        blobs = [b for b in getattr(net.module(layer.name), "blobs", ()) if b.numel() > 1]
        if not blobs or layer.type in ("BatchNorm",):
            continue
        first = blobs[0].detach()
        if bool((first == 0).all()):
            flat.append(f"{layer.name} (all zero)")
        elif bool((first == first.reshape(-1)[0]).all()):
            flat.append(f"{layer.name} (all {float(first.reshape(-1)[0]):g})")
    if flat:
        shown = ", ".join(flat[:6]) + (f" and {len(flat) - 6} more" if len(flat) > 6 else "")
        out.append(f"weights of {len(flat)} layer(s) are one constant: {shown}")
    return out


def _nonfinite_kind(value: np.ndarray) -> str | None:
    """'all NaN', 'all inf' or 'all NaN or inf' when no element is finite, else None."""
    if value.size == 0 or bool(np.isfinite(value).any()):
        return None
    if bool(np.isnan(value).all()):
        return "all NaN"
    return "all inf" if bool(np.isinf(value).all()) else "all NaN or inf"


def _nonfinite(want: np.ndarray, have: np.ndarray) -> str | None:
    """Which side has no finite value, in words (None when both have one)."""
    kinds = [(k, side) for k, side in ((_nonfinite_kind(want), "PyTorch"),
                                       (_nonfinite_kind(have), "onnxruntime")) if k]
    if not kinds:
        return None
    if len(kinds) == 2 and kinds[0][0] == kinds[1][0]:
        return f"{kinds[0][0]} from PyTorch and onnxruntime"
    return " and ".join(f"{k} from {side}" for k, side in kinds)


def nonfinite_warning(name: str, checks: Sequence[OutputCheck]) -> str:
    """Why output ``name`` was not verified: it had no finite value at these checks."""
    seen = [c for c in checks if c.name == name and c.nonfinite]
    batches = ", ".join(str(c.batch) for c in seen)
    return (f"output '{name}' is {seen[0].nonfinite} (batch {batches}): with no finite "
            "value there is nothing to compare (NaN matches NaN), so it was not verified; "
            "give the trained weights with --weights (filler weights, or an input without "
            "the net's mean and scale, can overflow) or pick a finite blob with --outputs")


def zero_statistics(net: CaffeNet) -> list[str]:
    """BatchNorm layers whose statistics are all zero (the fillers' values): Caffe then
    uses mean 0 and variance 0, so each divides its input by sqrt(eps). The forks' BN
    (slope, bias, mean, variance) starts its variance at 0 too unless ``frozen``."""
    params = net.params
    out = []
    for layer in net.ir.layers:
        blobs = params.get(layer.name, [])
        variance = {"BatchNorm": (3, 2), "BN": (4, 3)}.get(layer.type)  # (blobs, index)
        if variance and len(blobs) == variance[0] and not bool(blobs[variance[1]].any()):
            out.append(layer.name)
    return out


def overflow_notes(net: CaffeNet, inputs: Sequence[torch.Tensor]) -> list[str]:
    """Where PyTorch's forward on ``inputs`` first meets inf or NaN, and the BatchNorm
    layers with zero statistics that make filler weights overflow."""
    notes = []
    reset_states(net)
    with torch.no_grad():
        blobs = net(*inputs, blobs="all")
    reset_states(net)
    for layer in net.ir.layers:
        bad = [t.name for t in layer.tops if t.name in blobs
               and not bool(torch.isfinite(blobs[t.name]).all())]
        if bad:
            notes.append(f"the first blob with inf or NaN is '{bad[0]}' (layer '{layer.name}', "
                         f"{layer.type}; an in-place chain shows its last value)")
            break
    zero = zero_statistics(net)
    if zero:
        shown = ", ".join(zero[:4]) + (f" and {len(zero) - 4} more" if len(zero) > 4 else "")
        notes.append(f"{len(zero)} BatchNorm layer(s) have all-zero statistics ({shown}): "
                     "like Caffe, each then divides its input by sqrt(eps), and a deep net "
                     "overflows float32; give the trained weights with --weights")
    return notes


def _compare(name: str, batch: int, want: np.ndarray, have: np.ndarray) -> OutputCheck:
    finite = np.abs(want[np.isfinite(want)])
    scale = float(finite.max()) if finite.size else 0.0
    if want.shape != have.shape:
        return OutputCheck(name, batch, math.inf, math.inf, scale,
                           f"shape {list(have.shape)} from onnxruntime, {list(want.shape)} "
                           "from PyTorch")
    both_nan = np.isnan(want) & np.isnan(have)
    same_inf = np.isinf(want) & (want == have)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, counted as a difference below
        delta = np.where(both_nan | same_inf, 0.0, np.abs(want.astype(np.float64) - have))
    max_abs = float(np.nan_to_num(delta, nan=np.inf).max()) if delta.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    return OutputCheck(name, batch, max_abs, max_rel, scale, nonfinite=_nonfinite(want, have))


def _session(path: str | os.PathLike[str]):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def verify_export(
    path: str | os.PathLike[str], net: CaffeNet, outputs: Sequence[str],
    batches: Sequence[int], *, from_fillers: bool = False, half: bool = False,
    index_inputs: dict[str, int] | None = None, seed: int = 0,
) -> VerifyResult:
    """onnxruntime vs PyTorch on data-like inputs at each batch size (see the module doc)."""
    result = VerifyResult(rtol=RTOL_FLOAT16 if half else RTOL_FLOAT32)
    result.warnings += weight_warnings(net, from_fillers)
    try:
        session = _session(path)
    except Exception as exc:  # onnxruntime refuses the file: that is the finding
        result.checks += [OutputCheck(n, 0, math.inf, math.inf, 0.0, _line(exc)) for n in outputs]
        return result
    graph_inputs = {i.name: i.type for i in session.get_inputs()}
    constant: set[str] = set(outputs)
    for k, batch in enumerate(batches):
        inputs = data_like_inputs(net, batch, seed + k, index_inputs)
        reset_states(net)
        with torch.no_grad():
            extra = [n for n in outputs if n not in net.outputs]
            got_torch = net(*inputs, blobs=extra or None)
        reset_states(net)
        feeds = {}
        for name, value in zip(net.inputs, inputs):
            if name in graph_inputs:  # an input read only for its shape is not one
                dtype = np.float16 if "float16" in graph_inputs[name] else np.float32
                feeds[name] = value.numpy().astype(dtype)
        try:
            got_onnx = session.run(list(outputs), feeds)
        except Exception as exc:
            result.checks += [OutputCheck(n, batch, math.inf, math.inf, 0.0, _line(exc))
                              for n in outputs]
            continue
        for name, have in zip(outputs, got_onnx):
            want = got_torch[name].detach().float().numpy()
            result.checks.append(_compare(name, batch, want, np.asarray(have, np.float32)))
            if want.size > 1 and not np.all(want == want.reshape(-1)[0]):
                constant.discard(name)
    for name in dict.fromkeys(c.name for c in result.checks if c.nonfinite):
        result.warnings.append(nonfinite_warning(name, result.checks))
        constant.discard(name)  # the NaN warning says more
    if any(c.nonfinite for c in result.checks):
        result.warnings += overflow_notes(net, data_like_inputs(net, batches[0], seed,
                                                                index_inputs))
    for name in sorted(constant):
        result.warnings.append(f"output '{name}' is one constant value at every batch: "
                               "equal outputs here prove little")
    return result


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
