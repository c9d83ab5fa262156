"""``--amp``: the TRAIN forward runs in bfloat16 on the CPU while the loss layers compute
in float32; training stays finite and close to the float32 run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from caffe2torch.cli.main import main
from caffe2torch.solver.amp import loss_layer_names
from caffe2torch.solver.metrics import read_metrics
from caffe2torch.solver.solver import get_solver


@pytest.fixture
def case(tiny_case) -> Path:
    return tiny_case(batch=8, max_iter=8)


def _losses(amp: bool) -> tuple[list[float], dict[str, torch.dtype]]:
    solver = get_solver("solver.prototxt", log=None, amp=amp)
    dtypes: dict[str, torch.dtype] = {}
    hooks = [
        solver.net.module("ip2").register_forward_hook(
            lambda m, i, o: dtypes.__setitem__("ip2", o.dtype)),
        solver.net.module("loss").register_forward_hook(
            lambda m, i, o: dtypes.__setitem__("loss_in", i[0].dtype)),
    ]
    losses = []
    for _ in range(8):
        solver.step(1)
        losses.append(solver.iteration_loss)
    for h in hooks:
        h.remove()
    solver.close()
    return losses, dtypes


def test_amp_on_cpu_is_bfloat16_with_float32_losses(case: Path) -> None:
    full, full_types = _losses(amp=False)
    mixed, mixed_types = _losses(amp=True)
    assert full_types == {"ip2": torch.float32, "loss_in": torch.float32}
    assert mixed_types == {"ip2": torch.bfloat16, "loss_in": torch.float32}
    assert all(math.isfinite(v) for v in mixed)
    assert mixed[-1] < mixed[0]  # it trains
    for a, b in zip(mixed, full):
        assert a == pytest.approx(b, rel=0.05, abs=0.02)
    assert mixed != full  # bfloat16 did change the numbers


def test_loss_layers_are_found_by_type_and_loss_weight(case: Path) -> None:
    solver = get_solver("solver.prototxt", log=None)
    assert loss_layer_names(solver.net) == ["loss"]
    solver.close()


def test_train_cli_amp(case: Path, capsys) -> None:
    assert main(["train", "-solver", "solver.prototxt", "--amp", "-q"]) == 0
    rows = read_metrics(case / "out/solver_metrics.csv")
    losses = [r["value"] for r in rows if r["metric"] == "iteration_loss"]
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    assert (case / "out/solver_iter_8.caffemodel").exists()
