"""bench gpu: the GPU cases run where CUDA is present, one "no CUDA device" row where not."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench import bench_gpu
from bench.common import Report


@pytest.mark.parametrize("cuda", [False, True])
def test_gpu_cases_only_with_a_device(cuda: bool, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []
    monkeypatch.setattr(bench_gpu, "_channels_last_cpu", lambda *a: ran.append("cpu"))
    for name in ("_cuda_graph_case", "_amp_case", "_pinned_case"):
        def case(report: Report, device: torch.device, *a: Any, name: str = name) -> None:
            ran.append(f"{name} {device}")
        monkeypatch.setattr(bench_gpu, name, case)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    report = Report()
    bench_gpu.run(report, quick=True)
    if cuda:
        assert ran == ["cpu", "_cuda_graph_case cuda:0", "_amp_case cuda:0",
                       "_pinned_case cuda:0"]
        assert report.rows == []
    else:
        assert ran == ["cpu"]
        assert [r.measured for r in report.rows] == ["no CUDA device"]
