"""pycaffe's solvers over caffe2torch's Solver (Caffe's update rules, snapshots, tests).

``solver.net`` and ``solver.test_nets`` are pycaffe Nets over the solver's own nets, and
each iteration runs through them (Net::ForwardBackward), so after ``step`` every blob of
``solver.net`` holds the last forward's values and diffs, Python layers run as in Caffe,
and values a script writes into blobs between steps are what the next forward reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from caffe2torch.graph import CaffeNet
from caffe2torch.io import read_solver
from caffe2torch.io.upgrade import snapshot_prefix as default_snapshot_prefix
from caffe2torch.numerics import f32 as _f32
from caffe2torch.pycaffe import schema
from caffe2torch.pycaffe.blob import ensure_grad
from caffe2torch.pycaffe.mode import current_device
from caffe2torch.pycaffe.net import Net, _ensure_caffe_layer_module
from caffe2torch.solver.solver import Solver as _CoreSolver


class _PycaffeSolver(_CoreSolver):
    """The core Solver with its iteration run through pycaffe Nets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.callbacks: list[tuple[Callable[[], Any], Callable[[], Any]]] = []
        self._started = False
        self.py_net: Net | None = None
        self.py_test_nets: list[Net] = []
        super().__init__(*args, **kwargs)
        self.py_net = Net._wrap(self.net)
        self.py_test_nets = [Net._wrap(n) for n in self.test_nets]

    def _clear_diffs(self) -> None:  # Net::ClearParamDiffs: in place, arrays stay valid
        with torch.no_grad():
            for p in self.optimizer.learnable():
                ensure_grad(p).zero_()
        self._started = False

    def _forward_backward(self, first: bool = True
                          ) -> tuple[np.float32, dict[str, torch.Tensor]]:
        if not self._started:  # Solver::Step: on_start after the tests, before forward
            self._started = True
            for on_start, _ in self.callbacks:
                on_start()
        net = self.py_net
        assert net is not None
        last = len(net.layers) - 1
        loss = _f32(net._forward_from_to(0, last))
        if not np.isfinite(loss):
            raise self._diverged(loss, {})
        net._backward_from_to(last, 0)
        return loss, {name: net.blobs[name].tensor() for name in net.outputs}

    def _apply_update(self, display: bool) -> float:
        for _, on_gradients in self.callbacks:
            on_gradients()
        if self.py_net is not None:
            self.py_net._write_back_params()  # diffs a callback wrote (GPU)
        return super()._apply_update(display)

    def _test_forward(self, net: CaffeNet) -> dict[str, torch.Tensor]:
        for py in self.py_test_nets:
            if py.caffe_net is net:
                py._forward_from_to(0, len(py.layers) - 1)
                return {name: py.blobs[name].tensor() for name in py.outputs}
        return super()._test_forward(net)


class Solver:
    """pycaffe's Solver: ``net``, ``test_nets``, ``iter``, ``step``, ``solve``,
    ``snapshot``, ``restore``, ``apply_update``, ``add_callback``, ``share_weights``."""

    solver_type: str | None = None  # forced by the subclasses (SGDSolver...)

    def __init__(self, filename: Any) -> None:
        _ensure_caffe_layer_module()
        path = os.fspath(filename)
        fork = schema.active()  # `run --proto`: solver, nets and weights in the fork's schema
        param = read_solver(path, fork)
        if self.solver_type is not None:
            param.type = self.solver_type
        param.snapshot_prefix = default_snapshot_prefix(param, path)
        self._solver = _PycaffeSolver(param, path=path, device=current_device(),
                                      build_options={"allow_python_layers": True},
                                      data_workers=0, proto=fork)
        for net in (self._solver.net, *self._solver.test_nets):
            net.proto = fork  # Net.save writes what the fork's Caffe reads
        self.net: Net = self._solver.py_net  # type: ignore[assignment]
        self.test_nets: list[Net] = list(self._solver.py_test_nets)

    @property
    def iter(self) -> int:
        return self._solver.iter

    @property
    def param(self) -> Any:
        return self._solver.param

    @property
    def lr(self) -> float:
        return self._solver.lr

    def step(self, iters: int) -> None:
        self._solver.step(iters)

    def solve(self, resume_file: Any = None) -> None:
        self._solver.solve(None if resume_file is None else os.fspath(resume_file))

    def snapshot(self) -> None:
        self._solver.snapshot()

    def restore(self, filename: Any) -> None:
        self._solver.restore(os.fspath(filename))

    def apply_update(self) -> None:
        """SGDSolver::ApplyUpdate with the current rate; ``iter`` does not move (Caffe's
        Step increments it, pycaffe's apply_update does not)."""
        s = self._solver
        self.net._write_back_params()
        rate = s.policy.rate(s.iter)
        s.optimizer.iter = s.iter
        s.optimizer.step(rate=rate)
        s._last_rate = rate

    def add_callback(self, on_start: Callable[[], Any],
                     on_gradients: Callable[[], Any]) -> None:
        """Called at each iteration: ``on_start()`` before the forward, ``on_gradients()``
        after the backward, before the update."""
        self._solver.callbacks.append((on_start, on_gradients))

    def share_weights(self, net: Net) -> None:
        """``net`` takes this solver's train net params by layer name."""
        net.share_with(self.net)

    def test(self, test_net_id: int = 0) -> dict[str, float]:
        return self._solver.test(test_net_id)


class SGDSolver(Solver):
    solver_type = "SGD"


class NesterovSolver(Solver):
    solver_type = "Nesterov"


class AdaGradSolver(Solver):
    solver_type = "AdaGrad"


class RMSPropSolver(Solver):
    solver_type = "RMSProp"


class AdaDeltaSolver(Solver):
    solver_type = "AdaDelta"


class AdamSolver(Solver):
    solver_type = "Adam"


def get_solver(filename: Any) -> Solver:
    """caffe.get_solver: the solver type the file names (``type:``, default SGD)."""
    return Solver(filename)
