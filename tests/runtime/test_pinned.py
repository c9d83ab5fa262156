"""Copy-ahead through pinned memory (runtime.pinned) with CUDA faked: the order of the
stream calls, the batches and their order as without it, skips counting the batch drawn
ahead."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from caffe2torch.runtime import pinned
from caffe2torch.runtime.feeding import BatchStream
from caffe2torch.runtime.pinned import CopyAhead

calls: list[str] = []


class FakeStream:
    def __init__(self, device: Any = None, name: str = "copy") -> None:
        self.name = name

    def wait_stream(self, other: Any) -> None:
        calls.append(f"{self.name} waits {other.name}")


class FakeStreamContext:
    def __init__(self, stream: FakeStream) -> None:
        self.stream = stream

    def __enter__(self) -> None:
        calls.append(f"on {self.stream.name}")

    def __exit__(self, *exc: Any) -> None:
        calls.append(f"off {self.stream.name}")


@pytest.fixture(autouse=True)
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    calls.clear()
    compute = FakeStream(name="compute")
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "stream", FakeStreamContext)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: compute)

    def pin(t: torch.Tensor) -> torch.Tensor:
        calls.append(f"pin {int(t.flatten()[0])}")
        return t

    monkeypatch.setattr(pinned, "pinned", pin)
    monkeypatch.setattr(pinned, "_used_on",
                        lambda t, s: calls.append(f"{int(t.flatten()[0])} used on {s.name}"))


def test_next_batch_is_copied_while_the_current_one_is_used() -> None:
    rows = iter(range(10))

    def draw() -> dict[str, torch.Tensor]:
        k = next(rows)
        calls.append(f"draw {k}")
        return {"x": torch.full((2,), float(k))}

    ahead = CopyAhead(draw, torch.device("cpu"))
    first = ahead.next()
    assert calls == ["draw 0", "on copy", "pin 0", "off copy", "compute waits copy",
                     "0 used on compute", "draw 1", "on copy", "pin 1", "off copy"]
    assert float(first["x"][0]) == 0 and ahead.holding
    calls.clear()
    assert float(ahead.next()["x"][0]) == 1
    assert calls[:2] == ["compute waits copy", "1 used on compute"]  # no draw before
    assert ahead.drop() and not ahead.holding and not ahead.drop()


class Feeder:
    tops = ("x",)

    def __init__(self) -> None:
        self.k = 0

    def next_batch(self) -> dict[str, torch.Tensor]:
        self.k += 1
        return {"x": torch.full((1, 2), float(self.k))}

    def skip_batches(self, n: int) -> None:
        self.k += n

    def close(self) -> None:
        pass


def _values(copy_ahead: bool) -> list[float]:
    net = SimpleNamespace(inputs=["x"], blob_shapes={"x": (1, 2)})
    feeder = Feeder()
    stream = BatchStream(net, feeder, feeder.next_batch(), torch.device("cpu"),  # type: ignore[arg-type]
                         copy_ahead=copy_ahead)
    assert (stream.ahead is not None) == copy_ahead
    out = [float(stream()["x"][0, 0]) for _ in range(2)]
    stream.skip(3)
    out += [float(stream()["x"][0, 0]) for _ in range(2)]
    stream.skip(1)
    out.append(float(stream()["x"][0, 0]))
    assert stream.batches == 9
    return out


def test_same_batches_in_the_same_order_with_skips() -> None:
    plain = _values(False)
    assert plain == [1, 2, 6, 7, 9]
    assert _values(True) == plain


def test_on_by_default_only_on_a_gpu() -> None:
    net = SimpleNamespace(inputs=["x"], blob_shapes={"x": (1, 2)})
    assert BatchStream(net, Feeder(), None, torch.device("cpu")).ahead is None  # type: ignore[arg-type]
    assert BatchStream(net, None, None, torch.device("cpu"), copy_ahead=True).ahead is None  # type: ignore[arg-type]
    on_gpu = BatchStream(net, Feeder(), None, torch.device("cuda"))  # type: ignore[arg-type]
    assert on_gpu.ahead is not None and on_gpu.ahead.device == torch.device("cuda")
