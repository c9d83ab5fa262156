"""Caffe's update rules (SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam) as a torch
optimizer, step for step as SGDSolver::ApplyUpdate runs them (src/caffe/solvers/*.cpp):

1. ClipGradients: when ``clip_gradients >= 0`` and the global L2 norm of the raw summed
   diffs exceeds it, every diff is scaled by clip / norm;
2. per learnable blob, in order: Normalize (diff /= iter_size), Regularize (L2: diff +=
   local_decay * w; L1: diff += local_decay * sign(w)), ComputeUpdateValue (the rule below,
   with local_rate = rate * lr_mult), then w -= update.

The learning rate sits inside SGD's momentum history (``v = m*v + local_rate*g``), unlike
torch.optim.SGD. Every quantity is float32 with Caffe's rounding of the scalar factors.

The history blobs are kept in Caffe's SolverState layout: one per learnable blob in order,
and for AdaDelta and Adam a second set after the first (AdaDeltaPreSolve / AdamPreSolve
append ``len(params)`` more blobs). A blob with lr_mult 0 never moves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from caffe2torch.errors import SolverError
from caffe2torch.numerics import f32 as _f32
from caffe2torch.suggest import close_names, did_you_mean

SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
_TWO_HISTORIES = frozenset({"AdaDelta", "Adam"})
# the enum names of the old ``solver_type`` field
_ENUM_TYPES = {0: "SGD", 1: "Nesterov", 2: "AdaGrad", 3: "RMSProp", 4: "AdaDelta", 5: "Adam"}



def _float32_grad(p: torch.Tensor) -> torch.Tensor:
    """The param's gradient as a float32 tensor to update in place (zeros without one)."""
    g = p.grad
    if g is None:
        return torch.zeros_like(p, dtype=torch.float32)
    if g.dtype == torch.float32 and not g.requires_grad:
        return g.detach()
    return g.detach().to(torch.float32, copy=True)


def _f(x: float) -> float:
    """A Python float holding the float32 value of ``x`` (Caffe's Dtype)."""
    return float(_f32(x))


@dataclass(frozen=True)
class UpdateConfig:
    """The solver fields the update rules read (SolverParameter names and defaults)."""

    type: str = "SGD"
    momentum: float = 0.0
    momentum2: float = 0.999
    delta: float = 1e-8
    rms_decay: float = 0.99
    weight_decay: float = 0.0
    regularization_type: str = "L2"
    clip_gradients: float = -1.0
    iter_size: int = 1
    path: str | None = None

    def __post_init__(self) -> None:
        if self.type not in SOLVER_TYPES:
            close = close_names(self.type, SOLVER_TYPES)
            hint = did_you_mean(close, quote="'") or f"Caffe knows {', '.join(SOLVER_TYPES)}"
            raise SolverError(f"unknown solver type {self.type!r}", path=self.path, hint=hint)
        if self.regularization_type not in ("L1", "L2"):
            raise SolverError(f"unknown regularization_type {self.regularization_type!r}",
                              path=self.path, hint='use "L2" or "L1"')
        if self.iter_size < 1:
            raise SolverError(f"iter_size must be >= 1, got {self.iter_size}", path=self.path)
        if self.type == "RMSProp" and not 0 <= self.rms_decay < 1:
            raise SolverError(f"rms_decay must be in [0, 1), got {self.rms_decay}",
                              path=self.path)
        if self.type == "AdaGrad" and self.momentum != 0:
            raise SolverError("AdaGrad does not use momentum; Caffe refuses a nonzero one",
                              path=self.path, hint="remove the momentum line")
        if self.type == "RMSProp" and self.momentum != 0:
            raise SolverError("RMSProp does not use momentum; Caffe refuses a nonzero one",
                              path=self.path, hint="remove the momentum line (use rms_decay)")

    @classmethod
    def from_proto(cls, param: Any, path: str | None = None) -> UpdateConfig:
        """From a caffe_pb2.SolverParameter (``type``, or the old enum ``solver_type``)."""
        kind = param.type
        if not param.HasField("type") and param.HasField("solver_type"):
            kind = _ENUM_TYPES.get(int(param.solver_type), str(param.solver_type))
        return cls(
            type=kind,
            momentum=float(param.momentum),
            momentum2=float(param.momentum2),
            delta=float(param.delta),
            rms_decay=float(param.rms_decay),
            weight_decay=float(param.weight_decay),
            regularization_type=param.regularization_type,
            clip_gradients=float(param.clip_gradients),
            iter_size=int(param.iter_size),
            path=path,
        )

    @property
    def histories_per_param(self) -> int:
        return 2 if self.type in _TWO_HISTORIES else 1


ParamSpec = torch.Tensor | dict[str, Any]


class CaffeOptimizer(torch.optim.Optimizer):
    """Caffe's solver update over an ordered list of learnable params.

    ``params``: tensors (lr_mult = decay_mult = 1), or dicts ``{"params": [tensor, ...],
    "lr_mult": float, "decay_mult": float, "name": str}``; their order is Caffe's
    learnable-param order, which fixes the history layout. Each param's ``.grad`` must hold
    the raw gradient summed over the ``iter_size`` sub-batches (None counts as zero).

    ``step(rate)`` applies one update with the learning rate of this iteration (see
    :class:`caffe2torch.solver.lr_policy.LearningRatePolicy`); ``iter`` counts the updates
    (Caffe's ``iter_``, which Adam's bias correction reads).
    """

    def __init__(self, params: Iterable[ParamSpec], config: UpdateConfig) -> None:
        groups: list[dict[str, Any]] = []
        for spec in params:
            if isinstance(spec, torch.Tensor):
                groups.append({"params": [spec]})
            else:
                groups.append(dict(spec))
        defaults = {"lr_mult": 1.0, "decay_mult": 1.0, "name": "", "lr": 0.0}
        super().__init__(groups, defaults)
        self.config = config
        self.iter = 0
        self.last_clip_scale: float | None = None

    # ------------------------------------------------------------------ params and state

    def learnable(self) -> list[torch.nn.Parameter]:
        """The learnable params in Caffe's order."""
        return [p for g in self.param_groups for p in g["params"]]

    def _multipliers(self) -> list[tuple[torch.Tensor, float, float]]:
        return [(p, float(g["lr_mult"]), float(g["decay_mult"]))
                for g in self.param_groups for p in g["params"]]

    def _history(self, p: torch.Tensor, k: int) -> torch.Tensor:
        state = self.state[p]
        key = f"history{k}"
        if key not in state:
            state[key] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        return state[key]

    def history(self) -> list[torch.Tensor]:
        """The history blobs in SolverState order (first set, then AdaDelta's/Adam's second
        set), zeros for params not yet updated."""
        params = self.learnable()
        return [self._history(p, k) for k in range(self.config.histories_per_param)
                for p in params]

    def load_history(self, blobs: Sequence[Any], path: str | None = None) -> None:
        """Restore history blobs (arrays or tensors) in SolverState order. As
        Blob::FromProto reshapes, only the element count must match each param."""
        params = self.learnable()
        want = len(params) * self.config.histories_per_param
        if len(blobs) != want:
            raise SolverError(
                f"the solver state has {len(blobs)} history blobs; a {self.config.type} "
                f"solver over {len(params)} learnable params needs {want}", path=path,
                hint="the state was saved for another net or solver type")
        for i, blob in enumerate(blobs):
            p = params[i % len(params)]
            value = torch.as_tensor(np.asarray(blob, dtype=np.float32)
                                    if not isinstance(blob, torch.Tensor) else blob)
            if value.numel() != p.numel():
                raise SolverError(
                    f"history blob {i} has {value.numel()} values but learnable param "
                    f"{i % len(params)} has {p.numel()} {tuple(p.shape)}", path=path,
                    hint="the state was saved for another net")
            self._history(p, i // len(params)).copy_(value.reshape(p.shape).to(p))

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["caffe_iter"] = self.iter
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        self.iter = int(state_dict.pop("caffe_iter", 0))
        super().load_state_dict(state_dict)

    # ------------------------------------------------------------------ the update

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the learnable params' gradients (Net::ClearParamDiffs). One plain loop:
        torch's version walks every param group (here one per blob) inside a profiler
        record, ~0.6 ms a step for the MNIST Siamese net's ten blobs."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    def set_rate(self, rate: float) -> None:
        for g in self.param_groups:
            g["lr"] = rate

    @torch.no_grad()
    def step(self, closure: Any = None, *, rate: float | None = None) -> Any:
        """One ApplyUpdate with ``rate`` (default: the groups' ``lr``, see set_rate)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if rate is None:
            rate = float(self.param_groups[0]["lr"]) if self.param_groups else 0.0
        rate = _f(rate)
        entries = self._multipliers()
        # As Caffe's ApplyUpdate, the update is computed in the diff itself (a float32
        # grad is worked on in place and holds the step afterwards, as pycaffe's .diff does)
        diffs = [_float32_grad(p) for p, _, _ in entries]
        self._clip(diffs)
        for (p, lr_mult, decay_mult), g in zip(entries, diffs):
            self._update_one(p, g, rate, lr_mult, decay_mult)
        self.iter += 1
        return loss

    def _clip(self, diffs: list[torch.Tensor]) -> None:
        clip = _f(self.config.clip_gradients)
        self.last_clip_scale = None
        if clip < 0 or not diffs:
            return
        sumsq = _f32(0)
        for g in diffs:
            sumsq = _f32(sumsq + _f32(torch.dot(g.reshape(-1), g.reshape(-1)).item()))
        norm = _f32(math.sqrt(float(sumsq)))
        if norm > clip:
            scale = _f(_f32(clip) / norm)
            self.last_clip_scale = scale
            for g in diffs:
                g.mul_(scale)

    def _update_one(self, w: torch.Tensor, g: torch.Tensor, rate: float, lr_mult: float,
                    decay_mult: float) -> None:
        cfg = self.config
        if cfg.iter_size != 1:  # Normalize
            g.mul_(_f(_f32(1) / _f32(cfg.iter_size)))
        local_decay = _f(_f32(cfg.weight_decay) * _f32(decay_mult))
        data = w.detach()
        if local_decay:  # Regularize
            if cfg.regularization_type == "L2":
                g.add_(data.to(torch.float32), alpha=local_decay)
            else:
                g.add_(torch.sign(data.to(torch.float32)), alpha=local_decay)
        local_rate = _f(_f32(rate) * _f32(lr_mult))
        update = getattr(self, f"_rule_{cfg.type.lower()}")(w, g, local_rate)
        if lr_mult != 0:
            data.sub_(update.to(data.dtype))

    # each rule returns the value Caffe leaves in the diff (w -= it), updating the history

    def _rule_sgd(self, w: torch.Tensor, g: torch.Tensor, local_rate: float) -> torch.Tensor:
        h = self._history(w, 0)
        h.mul_(_f(self.config.momentum)).add_(g, alpha=local_rate)
        return h

    def _rule_nesterov(self, w: torch.Tensor, g: torch.Tensor, local_rate: float
                       ) -> torch.Tensor:
        m = _f(self.config.momentum)
        h = self._history(w, 0)
        previous = h.clone()
        h.mul_(m).add_(g, alpha=local_rate)
        return h.mul(_f(_f32(1) + _f32(m))).sub_(previous.mul_(m))

    def _rule_adagrad(self, w: torch.Tensor, g: torch.Tensor, local_rate: float
                      ) -> torch.Tensor:
        h = self._history(w, 0)
        h.add_(g * g)
        return g.div(h.sqrt().add_(_f(self.config.delta))).mul_(local_rate)

    def _rule_rmsprop(self, w: torch.Tensor, g: torch.Tensor, local_rate: float
                      ) -> torch.Tensor:
        d = _f(self.config.rms_decay)
        h = self._history(w, 0)
        h.mul_(d).add_(g * g, alpha=_f(_f32(1) - _f32(d)))
        return g.div(h.sqrt().add_(_f(self.config.delta))).mul_(local_rate)

    def _rule_adadelta(self, w: torch.Tensor, g: torch.Tensor, local_rate: float
                       ) -> torch.Tensor:
        m = _f(self.config.momentum)
        one_minus = _f(_f32(1) - _f32(m))
        delta = _f(self.config.delta)
        h1, h2 = self._history(w, 0), self._history(w, 1)
        h1.mul_(m).add_(g * g, alpha=one_minus)
        step = (h2 + delta).div_(h1 + delta).sqrt_().mul_(g)
        h2.mul_(m).add_(step * step, alpha=one_minus)
        return step.mul_(local_rate)

    def _rule_adam(self, w: torch.Tensor, g: torch.Tensor, local_rate: float) -> torch.Tensor:
        b1, b2 = _f32(self.config.momentum), _f32(self.config.momentum2)
        t = self.iter + 1
        # sqrt(1 - pow(b2, t)) / (1 - pow(b1, t)): pow(float, int) is double in C++
        correction = _f(math.sqrt(1.0 - float(b2) ** t) / (1.0 - float(b1) ** t))
        m1, m2 = self._history(w, 0), self._history(w, 1)
        m1.mul_(float(b1)).add_(g, alpha=_f(_f32(1) - b1))
        m2.mul_(float(b2)).add_(g * g, alpha=_f(_f32(1) - b2))
        return m1.div(m2.sqrt().add_(_f(self.config.delta))).mul_(
            _f(_f32(local_rate) * _f32(correction)))


def make_optimizer(params: Iterable[ParamSpec], solver: Any, path: str | None = None
                   ) -> CaffeOptimizer:
    """A CaffeOptimizer for a caffe_pb2.SolverParameter."""
    return CaffeOptimizer(params, UpdateConfig.from_proto(solver, path))


__all__ = ["SOLVER_TYPES", "CaffeOptimizer", "UpdateConfig", "make_optimizer"]
