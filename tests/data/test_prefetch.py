"""Prefetching a DataFeeder one batch ahead in a thread: the same batches in the same
order, skips counted from what the caller has seen, chosen from cores and read cost, and
read in line while batches are cheap."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from caffe2torch.data import DataFeeder
from caffe2torch.data.prefetch import MIN_BATCH_SECONDS, PrefetchingFeeder, prefetch_wanted
from caffe2torch.io import read_net_text
from tests.solver.tiny import NET, write_data


class CountingFeeder:
    def __init__(self) -> None:
        self.tops = ["x"]
        self.n = 0
        self.threads: set[str] = set()
        self.closed = False

    def next_batch(self) -> dict[str, torch.Tensor]:
        self.threads.add(threading.current_thread().name)
        self.n += 1
        return {"x": torch.tensor([self.n])}

    def skip_batches(self, n: int) -> None:
        self.n += n

    def close(self) -> None:
        self.closed = True


def test_order_skip_and_close() -> None:
    inner = CountingFeeder()
    feeder = PrefetchingFeeder(inner)
    got = [int(feeder.next_batch()["x"]) for _ in range(3)]
    feeder.skip_batches(2)  # batches 4 (read ahead) and 5
    got += [int(feeder.next_batch()["x"]) for _ in range(2)]
    feeder.skip_batches(0)
    assert got == [1, 2, 3, 6, 7]
    assert any(name.startswith("c2t-prefetch") for name in inner.threads)
    feeder.close()
    assert inner.closed


def test_a_real_feeder_gives_the_same_batches(tmp_path: Path) -> None:
    write_data(tmp_path)
    net = read_net_text(NET.format(batch=5, shuffle="true"))
    layers = [ly for ly in net.layer if ly.type == "HDF5Data"][:1]

    def batches(wrap: bool) -> list[torch.Tensor]:
        feeder = DataFeeder(layers, "TRAIN", cwd=str(tmp_path), seed=3)
        f = PrefetchingFeeder(feeder) if wrap else feeder
        out = [f.next_batch()["data"].clone() for _ in range(4)]
        f.skip_batches(3)
        out += [f.next_batch()["data"].clone() for _ in range(3)]
        f.close()
        return out

    for a, b in zip(batches(False), batches(True)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("cores, seconds, wanted", [
    (2, 0.05, True), (1, 0.05, False), (4, 0.0001, False)])
def test_prefetch_rule(cores: int, seconds: float, wanted: bool) -> None:
    assert prefetch_wanted(cores, seconds) is wanted


class CostlyFeeder(CountingFeeder):
    """Batches that cost ``costs[n]`` seconds of CPU time to read (the last cost after)."""

    def __init__(self, costs: list[float]) -> None:
        super().__init__()
        self.costs = costs
        self.where: list[str] = []

    def next_batch(self) -> dict[str, torch.Tensor]:
        cost = self.costs[min(self.n, len(self.costs) - 1)]
        started = time.thread_time()
        while time.thread_time() - started < cost:
            pass
        self.where.append(threading.current_thread().name)
        return super().next_batch()


def test_cheap_batches_are_read_in_line_and_dear_ones_ahead_again() -> None:
    dear, cheap = 4 * MIN_BATCH_SECONDS, 0.0
    inner = CostlyFeeder([dear] * 5 + [cheap] * 40 + [dear] * 40)
    feeder = PrefetchingFeeder(inner, batch_seconds=dear)
    got = [int(feeder.next_batch()["x"]) for _ in range(80)]
    feeder.close()
    assert got == list(range(1, 81))  # the same batches in the same order throughout
    in_thread = [name.startswith("c2t-prefetch") for name in inner.where]
    assert all(in_thread[1:5]), "dear batches are read ahead"
    assert not any(in_thread[30:45]), "cheap ones are read in line"
    assert all(in_thread[70:80]), "and dear ones ahead again"
