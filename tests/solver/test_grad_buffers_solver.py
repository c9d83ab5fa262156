"""The solver's persistent gradient buffers: the same trajectory as autograd's own
gradients (iter_size accumulation included), one buffer per weight for the whole run;
and a compiled solver within float tolerance of the eager one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from caffe2torch.layers.grad_buffers import GradBuffers
from caffe2torch.solver.solver import get_solver
from tests.solver.tiny import write_case, write_data


def _solver(folder: Path, **options: object):
    write_data(folder)
    path = write_case(folder, batch=4, max_iter=6)
    path.write_text(path.read_text() + "iter_size: 2\n")
    return get_solver(path, log=None, **options)


def _trajectory(solver) -> tuple[list[float], list[torch.Tensor]]:
    losses = []
    for _ in range(6):
        solver.step(1)
        losses.append(solver.iteration_loss)
    return losses, [p.detach().clone() for p in solver.net.parameters()]


def test_buffers_kept_and_trajectory_equals_autograd(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kept = _solver(tmp_path)
    weights = [m.blobs[0] for m in (kept.net.module("ip1"), kept.net.module("ip2"))]
    kept.step(1)
    first = [w.grad for w in weights]
    assert all(g is not None for g in first)
    losses, params = _trajectory(kept)
    assert all(w.grad is g for w, g in zip(weights, first))  # the same tensors throughout
    assert kept.grad_buffers.allocations == 2

    plain = _solver(tmp_path)
    plain.grad_buffers = GradBuffers()  # no members: autograd's fresh gradients
    plain.step(1)
    losses_plain, params_plain = _trajectory(plain)
    assert plain.grad_buffers.allocations == 0
    assert losses == pytest.approx(losses_plain, rel=1e-5)
    for a, b in zip(params, params_plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_compiled_solver_follows_the_eager_one(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch._dynamo.reset()
    compiled = _solver(tmp_path, compile=True)
    assert compiled.net.compiled is not None
    assert all(n.compiled is not None for n in compiled.test_nets)
    losses_c, params_c = _trajectory(compiled)
    losses_e, params_e = _trajectory(_solver(tmp_path))
    assert losses_c == pytest.approx(losses_e, rel=1e-4)
    for a, b in zip(params_c, params_e):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
