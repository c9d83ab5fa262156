"""Blob data on a device follows Caffe's SyncedMemory: ``.data`` copies device -> host
when the device is newer and makes the host the head; the next device use copies the
host back. No GPU is needed: the transfers are faked with counting functions and a
"device" tensor kept apart from the host array (CUDA faked)."""

from __future__ import annotations

import numpy as np
import torch

from caffe2torch.pycaffe.blob import DEVICE, HOST, SYNCED, SyncedMemory, Transfers


class FakeCuda:
    def __init__(self) -> None:
        self.to_host_calls = 0
        self.to_device_calls = 0

    def to_host(self, t: torch.Tensor) -> np.ndarray:
        self.to_host_calls += 1
        return t.detach().clone().numpy()

    def to_device(self, a: np.ndarray, device: torch.device) -> torch.Tensor:
        self.to_device_calls += 1
        return torch.from_numpy(a.copy())

    def transfers(self) -> Transfers:
        return Transfers(self.to_host, self.to_device)


def on_fake_device(values: torch.Tensor, fake: FakeCuda) -> SyncedMemory:
    mem = SyncedMemory(values, fake.transfers())
    mem.__class__ = _FakeDeviceMemory
    mem.head = DEVICE  # what a tensor on a CUDA device starts as
    return mem


class _FakeDeviceMemory(SyncedMemory):
    """A SyncedMemory that believes its tensor lives on a GPU."""

    __slots__ = ()

    @property
    def on_cpu(self) -> bool:
        return False


def test_host_read_syncs_once_and_takes_the_head() -> None:
    fake = FakeCuda()
    mem = on_fake_device(torch.arange(4.0), fake)
    host = mem.host()
    assert fake.to_host_calls == 1 and mem.head == HOST
    np.testing.assert_array_equal(host, [0, 1, 2, 3])
    assert mem.host() is host  # no new copy while the host is the head
    assert fake.to_host_calls == 1


def test_host_write_reaches_the_device_at_its_next_use() -> None:
    fake = FakeCuda()
    mem = on_fake_device(torch.zeros(3), fake)
    mem.host()[...] = 7  # a script writes net.blobs[...].data
    assert torch.equal(mem.tensor, torch.zeros(3))  # the device copy is not touched yet
    t = mem.device()
    assert fake.to_device_calls == 1 and mem.head == DEVICE
    assert torch.equal(t, torch.full((3,), 7.0))


def test_device_write_is_seen_by_the_next_host_read() -> None:
    fake = FakeCuda()
    mem = on_fake_device(torch.zeros(2), fake)
    mem.host()
    mem.set(torch.ones(2))  # a layer wrote a new top on the device
    assert mem.head == DEVICE
    np.testing.assert_array_equal(mem.host(), [1, 1])
    assert fake.to_host_calls == 2


def test_peek_syncs_without_moving_the_head() -> None:
    fake = FakeCuda()
    mem = on_fake_device(torch.zeros(2), fake)
    mem.host()[...] = 3
    assert torch.equal(mem.peek(), torch.full((2,), 3.0)) and mem.head == SYNCED
    mem.peek()
    assert fake.to_device_calls == 1


def test_cpu_tensors_are_aliased_not_copied() -> None:
    t = torch.zeros(3)
    mem = SyncedMemory(t)
    mem.host()[1] = 5
    assert t[1] == 5 and mem.head == SYNCED and mem.device().data_ptr() == t.data_ptr()


def test_param_write_back_keeps_the_parameter_storage() -> None:
    """A parameter on the device: a host write is copied into the parameter's own tensor
    (the module and the solver hold it), not into a new one."""
    fake = FakeCuda()
    param = torch.zeros(3)
    mem = on_fake_device(param, fake)
    mem.host()[...] = 4
    mem.write_back()
    assert torch.equal(param, torch.full((3,), 4.0)) and mem.head == SYNCED
    mem.write_back()  # nothing new: no transfer
    assert fake.to_device_calls == 1
