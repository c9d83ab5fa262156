"""Batches for a net that draws its own, as Caffe's Net::Forward does: the data layers of
the phase read through a DataFeeder (paths relative to ``cwd``), inputs no data layer feeds
(Input layers) hold zeros as a fresh Caffe blob does.

Data tops whose shape the prototxt does not tell (HDF5Data, Data) take it from the first
batch (:func:`open_feeder`), which is kept and handed out first. Building the net is
graph's job (graph.fed.build_fed_net); this module needs only what a built net exposes.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import torch

from caffe2torch.data import DataFeeder
from caffe2torch.data.prefetch import PrefetchingFeeder, prefetch_wanted
from caffe2torch.data.sources import SOURCE_TYPES
from caffe2torch.errors import DataError
from caffe2torch.ir.netstate import NetState, has_include_and_exclude, layer_included
from caffe2torch.runtime.devices import default_workers
from caffe2torch.runtime.pinned import CopyAhead

if TYPE_CHECKING:
    from caffe2torch.graph.net import CaffeNet


class BatchStream:
    """``stream()`` -> {input name: tensor on the net's device} for one forward."""

    def __init__(self, net: CaffeNet, feeder: DataFeeder | PrefetchingFeeder | None,
                 first: dict[str, torch.Tensor] | None, device: torch.device,
                 copy_ahead: bool | None = None) -> None:
        self.net = net
        self.feeder = feeder
        self._first = first or None
        self.device = device
        fed = set(feeder.tops) if feeder is not None else set()
        shapes = net.blob_shapes
        self.zeros = {name: torch.zeros(shapes[name], device=device)
                      for name in net.inputs if name not in fed}
        self.batches = 0  # batches handed out (or skipped)
        # on a GPU the next batch copies from pinned memory while a step runs (runtime.pinned)
        if copy_ahead is None:
            copy_ahead = device.type == "cuda"
        self.ahead = CopyAhead(self._draw, device) if copy_ahead and feeder is not None \
            else None

    def _draw(self) -> dict[str, torch.Tensor]:
        assert self.feeder is not None
        drawn = self._first if self._first is not None else self.feeder.next_batch()
        self._first = None
        return drawn

    def __call__(self) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = dict(self.zeros)
        if self.ahead is not None:
            batch.update(self.ahead.next())
        elif self.feeder is not None:
            for k, v in self._draw().items():
                batch[k] = v.to(self.device, non_blocking=True)
        self.batches += 1
        return {name: batch[name] for name in self.net.inputs if name in batch}

    def skip(self, n: int) -> None:
        """Move on by ``n`` batches without reading them."""
        if n <= 0:
            return
        self.batches += n
        if self.feeder is None:
            return
        if self.ahead is not None and self.ahead.drop():
            n -= 1
        if n and self._first is not None:
            self._first = None
            n -= 1
        if n:
            self.feeder.skip_batches(n)

    def close(self) -> None:
        if self.feeder is not None:
            self.feeder.close()


def data_layers(net_param: Any, state: NetState) -> list[Any]:
    """The layers of ``state`` that a DataFeeder reads (ImageData, Data, HDF5Data)."""
    return [ly for ly in net_param.layer
            if ly.type in SOURCE_TYPES and not has_include_and_exclude(ly)
            and layer_included(ly, state)]


def annotated_layers(net_param: Any, state: NetState) -> list[Any]:
    """The AnnotatedData layers (SSD) of ``state``: read by an AnnotatedDataReader."""
    return [ly for ly in net_param.layer
            if ly.type == "AnnotatedData" and not has_include_and_exclude(ly)
            and layer_included(ly, state)]


def _annotated_reader(net_param: Any, state: NetState, cwd: str, seed: int | None,
                      rank: int, world_size: int) -> Any:
    """The reader of the net's one AnnotatedData layer (None without one)."""
    layers = annotated_layers(net_param, state)
    if not layers:
        return None
    if len(layers) > 1 or data_layers(net_param, state):
        raise DataError(f"the {state.phase} net mixes an AnnotatedData layer with other "
                        "data layers: only a net whose one data layer is AnnotatedData is "
                        "fed", hint="feed the net's inputs yourself (net(data=..., "
                        "label=...))")
    from caffe2torch.layers.forks.ssd_data import AnnotatedDataReader

    return AnnotatedDataReader(layers[0], state.phase, cwd, seed, rank, world_size)


def layer_extras(net_param: Any, source_map: Any) -> dict[str, dict[str, Any]]:
    """{layer name: {dotted path: value}} of the fields our schema lacks that the reader
    kept for each layer of ``net_param`` (the data sources read a fork's ``shuffle``)."""
    extras_of = getattr(source_map, "extras_of", None)
    if extras_of is None or not getattr(source_map, "extras", None):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for i, layer in enumerate(net_param.layer):
        try:
            found = extras_of(i)
        except IndexError:  # a map of another net (positions only for some layers)
            break
        if found:
            out.setdefault(layer.name, {}).update({e.dotted: e.value for e in found})
    return out


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def open_feeder(
    net_param: Any,
    state: NetState,
    *,
    device: torch.device,
    cwd: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
    source_map: Any = None,
) -> tuple[DataFeeder | PrefetchingFeeder | None, dict[str, torch.Tensor] | None]:
    """A DataFeeder for the data layers of ``state`` (None when there are none) and its
    first batch, whose shapes the net is built with. ``rank`` / ``world_size``: this
    process's shard of the TRAIN data (see DataFeeder). ``num_workers``: data worker
    processes (default: see :func:`~caffe2torch.runtime.devices.default_workers`); batches
    go to a GPU through pinned memory. ``source_map``: the net file's positions, whose kept
    fork fields the sources read (Data's ``shuffle``)."""
    folder = os.fspath(cwd) if cwd is not None else os.getcwd()
    reader = _annotated_reader(net_param, state, folder, seed, rank, world_size)
    if reader is not None:
        return reader, reader.next_batch()
    layers = data_layers(net_param, state)
    if not layers:
        return None, None
    workers = default_workers(device, world_size) if num_workers is None else num_workers
    feeder = DataFeeder(layers, state.phase, cwd=folder, seed=seed, rank=rank,
                        world_size=world_size, num_workers=workers,
                        pin_memory=device.type == "cuda",
                        extras=layer_extras(net_param, source_map))
    started = time.perf_counter()
    first = feeder.next_batch()
    seconds = time.perf_counter() - started
    if workers == 0 and device.type == "cpu" and prefetch_wanted(_cores(), seconds):
        # Caffe's prefetch thread, while reading costs enough (data.prefetch)
        return PrefetchingFeeder(feeder, seconds), first
    return feeder, first


class LazyBatchStream:
    """A BatchStream opened at the first call: ``load_net(...)()`` on a net with data
    layers reads their next batch (Caffe's Net::Forward) without opening the data when
    the net is only built, or fed by name."""

    def __init__(self, net: CaffeNet, net_param: Any, state: NetState, cwd: str,
                 source_map: Any = None) -> None:
        self.net, self.net_param, self.state, self.cwd = net, net_param, state, cwd
        self.source_map = source_map
        self.stream: BatchStream | None = None

    def __call__(self) -> dict[str, torch.Tensor]:
        if self.stream is None:
            feeder = _annotated_reader(self.net_param, self.state, self.cwd, None, 0, 1) or \
                DataFeeder(data_layers(self.net_param, self.state), self.state.phase,
                           cwd=self.cwd, num_workers=0,
                           extras=layer_extras(self.net_param, self.source_map))
            device = next((p.device for p in self.net.parameters()), torch.device("cpu"))
            self.stream = BatchStream(self.net, feeder, None, device)
        return self.stream()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def attach_lazy_feeder(net: CaffeNet, net_param: Any, state: NetState,
                       cwd: str | os.PathLike[str] | None = None,
                       source_map: Any = None) -> None:
    """Give a plain-built net a feeder for its data layers (if it has any)."""
    if data_layers(net_param, state) or annotated_layers(net_param, state):
        net.feeder = LazyBatchStream(net, net_param, state, os.fspath(cwd or os.getcwd()),
                                     source_map)


__all__ = ["BatchStream", "LazyBatchStream", "annotated_layers", "attach_lazy_feeder",
           "data_layers", "layer_extras", "open_feeder"]
