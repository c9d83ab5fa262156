"""pycaffe's Blob: ``data`` and ``diff`` as numpy arrays that alias the torch storage.

On the CPU the arrays are views of the tensors (``tensor.numpy()``), made once per
tensor and cached, so ``blob.data`` allocates nothing and a write through it is seen by
the next forward. On a GPU a blob follows Caffe's SyncedMemory (syncedmem.cpp): the
values live on the device; reading ``.data`` copies them to a host array when the device
copy is newer and marks the host copy as the head (pycaffe's ``.data`` is
``mutable_cpu_data``: the caller may write); the next use on the device copies the host
array back first. The transfers are two functions (``Transfers``) so that the protocol
can be checked without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from caffe2torch.layers.bvlc.inputs import LegacyAxes

Shape = tuple[int, ...]

HOST, DEVICE, SYNCED = "host", "device", "synced"


@dataclass(frozen=True)
class Transfers:
    """How values move between the device and the host (swappable in tests)."""

    to_host: Callable[[torch.Tensor], np.ndarray]
    to_device: Callable[[np.ndarray, torch.device], torch.Tensor]


def _to_host(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _to_device(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(a).to(device)


TRANSFERS = Transfers(_to_host, _to_device)


class SyncedMemory:
    """One tensor of a blob and its host face (see the module docstring)."""

    __slots__ = ("_host", "head", "tensor", "transfers")

    def __init__(self, tensor: torch.Tensor, transfers: Transfers | None = None) -> None:
        self.tensor = tensor.detach()
        self._host: np.ndarray | None = None
        self.head = SYNCED if self.tensor.device.type == "cpu" else DEVICE
        self.transfers = transfers or TRANSFERS

    @property
    def on_cpu(self) -> bool:
        return self.tensor.device.type == "cpu"

    def host(self) -> np.ndarray:
        """mutable_cpu_data: the host array, current; the host becomes the head."""
        if self.on_cpu:
            if self._host is None:
                self._host = self.tensor.numpy()
            return self._host
        if self.head == DEVICE or self._host is None:
            self._host = np.ascontiguousarray(self.transfers.to_host(self.tensor))
        self.head = HOST
        return self._host

    def device(self) -> torch.Tensor:
        """mutable_gpu_data: the tensor, current; the device becomes the head."""
        if not self.on_cpu and self.head == HOST and self._host is not None:
            self.tensor = self.transfers.to_device(self._host, self.tensor.device).reshape(
                self.tensor.shape)
        if not self.on_cpu:
            self.head = DEVICE
        return self.tensor

    def peek(self) -> torch.Tensor:
        """gpu_data: the tensor, current, read only (the head stays where it is)."""
        if not self.on_cpu and self.head == HOST and self._host is not None:
            self.tensor = self.transfers.to_device(self._host, self.tensor.device).reshape(
                self.tensor.shape)
            self.head = SYNCED
        return self.tensor

    def write_back(self) -> None:
        """A host write reaches the device tensor in place (a parameter or its diff keeps
        its storage, which the modules and the solver hold)."""
        if not self.on_cpu and self.head == HOST and self._host is not None:
            with torch.no_grad():
                self.tensor.copy_(self.transfers.to_device(self._host, self.tensor.device)
                                  .reshape(self.tensor.shape))
            self.head = SYNCED

    @property
    def handed_out(self) -> bool:
        """On the CPU: a host array of the current tensor has been given out (a script
        may hold it, or a slice of it)."""
        return self.on_cpu and self._host is not None

    def set(self, tensor: torch.Tensor) -> None:
        """The layer wrote a new tensor: the device holds the newest values."""
        self.tensor = tensor.detach()
        self._host = None
        self.head = SYNCED if self.on_cpu else DEVICE


def _shape_args(shape: Sequence[Any]) -> Shape:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(d) for d in shape)


class Blob(LegacyAxes):
    """A named blob of a net (or a param): ``data``, ``diff``, ``shape``, ``count``,
    ``reshape(*shape)`` and the legacy ``num``/``channels``/``height``/``width``."""

    __slots__ = ("__weakref__", "_data", "_diff")

    def __init__(self, data: torch.Tensor, diff: torch.Tensor | None = None) -> None:
        self._data = SyncedMemory(data)
        self._diff = SyncedMemory(diff) if diff is not None else None

    # -- pycaffe's surface

    @property
    def data(self) -> np.ndarray:
        return self._data.host()

    @property
    def diff(self) -> np.ndarray:
        return self._diff_memory().host()

    @property
    def shape(self) -> Shape:
        return tuple(self._data.tensor.shape)

    @property
    def count(self) -> int:
        return int(self._data.tensor.numel())

    def reshape(self, *shape: Any) -> None:
        """Blob::Reshape: new storage when the shape changes (contents undefined in Caffe,
        zeros here); the same arrays when it does not."""
        new = _shape_args(shape)
        if new == self.shape:
            return
        device = self._data.tensor.device
        self._data.set(torch.zeros(new, device=device))
        if self._diff is not None:
            self._diff.set(torch.zeros(new, device=device))

    # -- the net's side

    def _diff_memory(self) -> SyncedMemory:
        if self._diff is None or tuple(self._diff.tensor.shape) != self.shape:
            self._diff = SyncedMemory(torch.zeros_like(self._data.tensor))
        return self._diff

    def tensor(self) -> torch.Tensor:
        """The data for a layer to read (current on its device)."""
        return self._data.peek()

    def diff_tensor(self) -> torch.Tensor:
        return self._diff_memory().peek()

    @property
    def held(self) -> bool:
        """Whether ``data`` has been read since the blob's tensor was last rebound."""
        return self._data.handed_out

    def set_tensor(self, value: torch.Tensor) -> bool:
        """A layer's new top. Rebinds the data (no copy), unless ``data`` has been read
        since the last rebinding: then the values are copied into that storage when they
        fit, so an array a script took (BVLC's net_surgery notebook keeps
        ``conv0 = net.blobs['conv'].data[0, 0]`` across a forward) sees them, as Caffe's
        layers write into the blob's own memory. Returns whether it copied."""
        mem = self._data
        t = mem.tensor
        if (mem.handed_out and tuple(t.shape) == tuple(value.shape)
                and t.dtype == value.dtype and t.device == value.device):
            if value.data_ptr() != t.data_ptr():
                with torch.no_grad():
                    t.copy_(value)
            return True
        mem.set(value)
        return False

    def write_tensor(self, value: torch.Tensor) -> None:
        """A data layer's new batch: copied into the blob's storage when it fits (arrays
        a script holds see it, as Caffe's data layers fill the same memory), else
        rebound."""
        mem = self._data
        t = mem.tensor
        if (mem.on_cpu and tuple(t.shape) == tuple(value.shape) and t.dtype == value.dtype
                and t.device == value.device):
            with torch.no_grad():
                t.copy_(value)
            return
        mem.set(value)

    def set_diff(self, value: torch.Tensor) -> None:
        mem = self._diff_memory()
        if tuple(value.shape) == tuple(mem.tensor.shape) and mem.on_cpu:
            mem.device().copy_(value)  # same arrays: a held .diff sees the new values
            return
        mem.set(value.reshape(self.shape) if value.numel() == self.count else value)

    def __repr__(self) -> str:
        return f"Blob(shape={self.shape})"


class ParamBlob(Blob):
    """A learnable parameter seen as a Blob: ``data`` aliases the parameter, ``diff`` its
    ``.grad`` (allocated here, zeroed in place, never replaced). The parameter is looked up
    through ``owner`` at each access, so a blob follows ``share_with`` and ``copy_from``."""

    __slots__ = ("_index", "_owner", "_seen")

    def __init__(self, owner: torch.nn.ParameterList, index: int) -> None:
        self._owner = owner
        self._index = index
        self._seen: Any = None
        self._data = None  # type: ignore[assignment]
        self._diff = None
        self._refresh()

    def _param(self) -> torch.nn.Parameter:
        return self._owner[self._index]

    def _refresh(self) -> None:
        p = self._param()
        grad = ensure_grad(p)
        key = (p, p.data.data_ptr(), grad)
        if self._seen is not None and all(a is b for a, b in zip(key[::2], self._seen[::2])) \
                and key[1] == self._seen[1]:
            return
        self._seen = key
        self._data = SyncedMemory(p.data)
        self._diff = SyncedMemory(grad)

    @property
    def data(self) -> np.ndarray:
        self._refresh()
        return self._data.host()

    @property
    def diff(self) -> np.ndarray:
        self._refresh()
        return self._diff.host()  # type: ignore[union-attr]

    @property
    def shape(self) -> Shape:
        return tuple(self._param().shape)

    @property
    def count(self) -> int:
        return int(self._param().numel())

    def write_back(self) -> None:
        """On a device: values written through ``data`` / ``diff`` reach the parameter."""
        if self._seen is not None:
            self._data.write_back()
            if self._diff is not None:
                self._diff.write_back()

    def reshape(self, *shape: Any) -> None:
        new = _shape_args(shape)
        p = self._param()
        if new != tuple(p.shape):
            with torch.no_grad():
                p.data = torch.zeros(new, device=p.device, dtype=p.dtype)
            p.grad = torch.zeros_like(p.data)
            self._seen = None


def ensure_grad(p: torch.nn.Parameter) -> torch.Tensor:
    """The parameter's diff, allocated (zeros) when it has none yet."""
    if p.grad is None or tuple(p.grad.shape) != tuple(p.shape):
        p.grad = torch.zeros_like(p.data)
    return p.grad


class BlobVec:
    """pycaffe's BlobVec: a layer's param blobs by index; ``add_blob(*shape)`` (Python
    layers) appends a new learnable parameter of zeros."""

    def __init__(self, params: torch.nn.ParameterList | None = None) -> None:
        self.params = params if params is not None else torch.nn.ParameterList()
        self._views: list[ParamBlob] = []

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, index: int) -> ParamBlob:
        n = len(self.params)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("blob index out of range")
        while len(self._views) < n:
            self._views.append(ParamBlob(self.params, len(self._views)))
        return self._views[index]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def add_blob(self, *shape: Any) -> None:
        self.params.append(torch.nn.Parameter(torch.zeros(_shape_args(shape))))
