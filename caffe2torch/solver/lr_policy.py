"""Caffe's learning-rate policies, exactly as SGDSolver::GetLearningRate computes them.

The rate is Caffe's ``Dtype`` (float32); the arguments of ``pow``/``exp`` are formed in
float as Caffe writes them. How the rest rounds was pinned against the rates real Caffe
handed to its updates (bit-exact on every golden trajectory): step, exp, multistep and
poly form ``base_lr * pow(...)`` in double and round once; inv rounds ``pow`` to float and
multiplies in float; sigmoid is float throughout.

``multistep`` keeps state: ``current_step`` advances by at most one per call, when the
iteration reaches the next ``stepvalue`` (so it must be asked every iteration, as Caffe
does). ``step`` also writes ``current_step`` (iter / stepsize). Snapshots save it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from caffe2torch.errors import SolverError
from caffe2torch.numerics import f32 as _f32
from caffe2torch.suggest import close_names, did_you_mean

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

# fields each policy's formula reads (besides base_lr); a policy without one is refused
_NEEDS: dict[str, tuple[str, ...]] = {
    "fixed": (),
    "step": ("stepsize", "gamma"),
    "exp": ("gamma",),
    "inv": ("gamma", "power"),
    "multistep": ("stepvalue", "gamma"),
    "poly": ("max_iter", "power"),
    "sigmoid": ("stepsize", "gamma"),
}



@dataclass
class LearningRatePolicy:
    """``rate(iter)`` as Caffe computes it for a SolverParameter's lr fields."""

    policy: str = "fixed"
    base_lr: float = 0.0
    gamma: float = 0.0
    power: float = 0.0
    stepsize: int = 0
    stepvalue: tuple[int, ...] = ()
    max_iter: int = 0
    current_step: int = 0
    path: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            close = close_names(self.policy, POLICIES)
            hint = did_you_mean(close, quote="'") or f"Caffe knows {', '.join(POLICIES)}"
            raise SolverError(f"unknown lr_policy {self.policy!r}", path=self.path, hint=hint)
        if self.gamma < 0 and self.policy != "fixed" and self.policy != "poly":
            raise SolverError(f"lr_policy {self.policy!r} needs gamma >= 0, got {self.gamma}",
                              path=self.path)
        if self.policy in ("step", "sigmoid") and self.stepsize <= 0:
            raise SolverError(f"lr_policy {self.policy!r} needs stepsize > 0, got "
                              f"{self.stepsize}", path=self.path)
        if self.policy == "poly" and self.max_iter <= 0:
            raise SolverError(f"lr_policy 'poly' needs max_iter > 0, got {self.max_iter}",
                              path=self.path)

    @classmethod
    def from_proto(cls, param: Any, path: str | None = None) -> LearningRatePolicy:
        """From a caffe_pb2.SolverParameter; a field the policy needs but the file leaves
        unset is a SolverError naming it."""
        policy = param.lr_policy
        if not param.HasField("lr_policy"):
            raise SolverError("the solver sets no lr_policy", path=path,
                              hint='add e.g. lr_policy: "fixed"')
        for name in _NEEDS.get(policy, ()):
            has = len(param.stepvalue) > 0 if name == "stepvalue" else param.HasField(name)
            if not has:
                raise SolverError(f"lr_policy {policy!r} needs {name}, which the solver does "
                                  f"not set", path=path, hint=f"add a {name}: line")
        return cls(
            policy=policy,
            base_lr=float(param.base_lr),
            gamma=float(param.gamma),
            power=float(param.power),
            stepsize=int(param.stepsize),
            stepvalue=tuple(int(v) for v in param.stepvalue),
            max_iter=int(param.max_iter),
            path=path,
        )

    def rate(self, it: int) -> float:
        """The rate for iteration ``it`` (float32 value as a Python float). Updates
        ``current_step`` for step and multistep, as Caffe does."""
        base = _f32(self.base_lr)
        gamma = _f32(self.gamma)
        p = self.policy
        if p == "fixed":
            return float(base)
        if p == "step":
            self.current_step = it // self.stepsize
            return _double_pow_rate(base, gamma, self.current_step)
        if p == "exp":
            return _double_pow_rate(base, gamma, it)
        if p == "inv":
            inner = _f32(1) + _f32(gamma * _f32(it))
            return float(base * _f32(_pow(float(inner), -float(_f32(self.power)))))
        if p == "multistep":
            if self.current_step < len(self.stepvalue) and it >= self.stepvalue[
                    self.current_step]:
                self.current_step += 1
            return _double_pow_rate(base, gamma, self.current_step)
        if p == "poly":
            frac = _f32(1) - _f32(_f32(it) / _f32(self.max_iter))
            return _double_rate(base, float(frac), float(_f32(self.power)))
        # sigmoid: all in float
        z = _f32(-gamma * _f32(_f32(it) - _f32(self.stepsize)))
        with np.errstate(over="ignore"):
            sig = _f32(1) / (_f32(1) + np.exp(z))
        return float(base * _f32(sig))

    def rates(self, iters: Sequence[int]) -> list[float]:
        """``rate`` for each iteration in turn (state carried along)."""
        return [self.rate(i) for i in iters]


def _pow(x: float, y: float) -> float:
    try:
        return math.pow(x, y)
    except (OverflowError, ValueError):
        return math.inf if abs(x) > 1 or (x == 0 and y < 0) else math.nan


def _double_rate(base: np.float32, x: float, y: float) -> float:
    # base_lr * pow(x, y) formed in double and rounded to float once
    return float(_f32(float(base) * _pow(x, y)))


def _double_pow_rate(base: np.float32, gamma: np.float32, n: int) -> float:
    return _double_rate(base, float(gamma), float(n))


__all__ = ["POLICIES", "LearningRatePolicy"]
