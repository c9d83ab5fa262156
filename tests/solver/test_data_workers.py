"""Training with data worker processes follows the very trajectory of training with the
main process reading the data (workers change where rows are decoded, not which)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from caffe2torch.data import DataFeeder
from caffe2torch.errors import DataError
from caffe2torch.io import read_net
from caffe2torch.runtime.devices import default_workers
from caffe2torch.solver.solver import get_solver


def _trajectory(solver_path: Path, workers: int) -> tuple[list[float], list[torch.Tensor]]:
    solver = get_solver(solver_path, log=None, data_workers=workers)
    try:
        losses = []
        for _ in range(7):  # past the 24 rows' first epoch: the next shuffle too
            solver.step(1)
            losses.append(solver.iteration_loss)
        return losses, [p.detach().clone() for p in solver.net.parameters()]
    finally:
        solver.close()


def test_workers_train_exactly_as_the_main_process(tiny_case: Callable[..., Path]) -> None:
    folder = tiny_case(batch=5, max_iter=7)
    losses0, params0 = _trajectory(folder / "solver.prototxt", 0)
    losses2, params2 = _trajectory(folder / "solver.prototxt", 2)
    assert losses0 == losses2
    for a, b in zip(params0, params2):
        assert torch.equal(a, b)


def test_negative_worker_count_is_refused(tiny_case: Callable[..., Path]) -> None:
    folder = tiny_case(batch=5)
    net = read_net(folder / "solver_net.prototxt")
    with pytest.raises(DataError, match="num_workers"):
        DataFeeder.from_net(net, "TRAIN", cwd=folder, num_workers=-1)


def test_default_workers_only_on_a_gpu() -> None:
    assert default_workers(torch.device("cpu")) == 0
    assert 1 <= default_workers(torch.device("cuda", 0)) <= 4
