"""pycaffe's Net over a built CaffeNet, run layer by layer as Caffe's Net does.

Each blob is a :class:`Blob` whose arrays alias torch storage. ``forward(start, end)`` runs
Net::ForwardFromTo: every layer reads its bottoms' current data and rebinds its tops
(or, for a blob whose ``data`` a script has read, writes into its storage); a
net with data layers draws its next batch when the range starts at them; DummyData tops
with a constant filler keep their values (Caffe refills only the others). ``backward``
runs Net::BackwardFromTo: each layer gets its tops' diffs (a loss top's diff is its loss
weight, set once as Layer::SetLossWeights does) and writes its bottoms' diffs; where a
blob feeds several layers their diffs are summed (Caffe's Split layers), and an in-place
layer's bottom diff replaces its top diff in the one blob; param diffs accumulate until
cleared. A layer's backward differentiates the graph its forward recorded (TRAIN, or
``force_backward``), else its forward again on the current data.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from caffe2torch.errors import CaffeError, mark_user_code_error
from caffe2torch.graph import CaffeNet
from caffe2torch.ir.graph import BlobRef
from caffe2torch.layers.bvlc.inputs import layer_phase
from caffe2torch.layers.registry import layer_blobs
from caffe2torch.pycaffe import schema
from caffe2torch.pycaffe.blob import Blob, BlobVec, ensure_grad
from caffe2torch.pycaffe.mode import TEST, TRAIN, current_device, phase_name

# how a layer runs
_MODULE, _FED, _INPUT, _MEMORY, _DUMMY, _PYTHON, _SPLIT = range(7)


@dataclass
class _Step:
    """One layer of the net as the runner sees it."""

    name: str
    type: str
    kind: int
    # What the runner calls for this kind: the layer's module (blobs, forward), a Python
    # layer's wrapper (.layer), a MemoryData's (.shapes), a DummyData's (.fillers).
    module: Any
    bottoms: tuple[BlobRef, ...]
    tops: tuple[BlobRef, ...]
    propagate: tuple[bool, ...]  # compute this bottom's diff
    need_backward: bool
    refill: tuple[bool, ...] = ()  # DummyData: refill this top at each forward


class LayerView:
    """pycaffe's Layer object of a net: ``type``, ``blobs`` (its params)."""

    def __init__(self, step: _Step) -> None:
        self.type = step.type
        self.name = step.name
        self.blobs = BlobVec(step.module.blobs)
        self._step = step

    def __repr__(self) -> str:
        return f"<Layer {self.name!r} ({self.type})>"


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(out) if out is not None else ()


def _ensure_caffe_layer_module() -> None:
    """Python layers subclass ``caffe.Layer``: when nothing called ``caffe`` is importable,
    let ``import caffe`` in the layer's module find this package."""
    import importlib.util
    import sys

    if "caffe" not in sys.modules and importlib.util.find_spec("caffe") is None:
        from caffe2torch.pycaffe import alias

        alias.install()


class Net:
    """``caffe.Net(network_file, [weights,] phase, level=0, stages=None, weights=None)``."""

    def __init__(self, network_file: Any, *args: Any, phase: Any = None,
                 weights: Any = None, level: int = 0, stages: Sequence[str] | None = None,
                 **legacy: Any) -> None:
        if "weights_file" in legacy:  # Net(file, phase, weights_file=...) in some scripts
            weights = legacy.pop("weights_file")
        if legacy:
            raise TypeError(f"Net() got unexpected keyword arguments: {sorted(legacy)}")
        rest = list(args)
        if rest and isinstance(rest[0], (str, os.PathLike)):
            if weights is not None:
                raise TypeError("Net(): weights given twice")
            weights = rest.pop(0)  # the legacy Net(prototxt, weights, phase)
        if rest:
            if phase is not None:
                raise TypeError("Net(): phase given twice")
            phase = rest.pop(0)
        if rest:
            raise TypeError("Net(network_file, [weights,] phase): too many arguments")
        if phase is None:
            raise TypeError("Net() needs a phase (caffe.TRAIN or caffe.TEST)")
        net = _build(network_file, phase_name(phase), level, stages or ())
        self._attach(net)
        if weights is not None:
            self.copy_from(weights)

    @classmethod
    def _wrap(cls, net: CaffeNet) -> Net:
        """A pycaffe Net over a CaffeNet built elsewhere (the solver's nets)."""
        self = cls.__new__(cls)
        self._attach(net)
        return self

    # ------------------------------------------------------------------ set up

    def _attach(self, net: CaffeNet) -> None:
        from caffe2torch.layers.bvlc.inputs import (
            CaffeDummyData,
            CaffePythonLayer,
            DataInput,
            MemoryDataInput,
        )

        self._net = net
        self.phase = TRAIN if net.phase == "TRAIN" else TEST
        ir = net.ir
        stream = net.batch_stream
        feeder = getattr(stream, "feeder", None)
        self._stream = stream if feeder is not None else None
        fed = set(feeder.tops) if feeder is not None else set()
        self._force_backward = bool(getattr(net.net_param, "force_backward", False))
        needs: dict[str, bool] = {}
        steps: list[_Step] = []
        for layer, module in zip(ir.layers, net._modules_in_order):
            if isinstance(module, CaffePythonLayer):
                kind = _PYTHON
            elif isinstance(module, MemoryDataInput):
                kind = _MEMORY
            elif layer.is_data and layer.top_names and all(t in fed for t in layer.top_names):
                kind = _FED
            elif isinstance(module, DataInput) or layer.is_data:
                kind = _INPUT  # tops the script sets (Input, or a data layer nobody feeds)
            elif isinstance(module, CaffeDummyData):
                kind = _DUMMY
            else:
                kind = _MODULE
            # Net::Init's need_backward: a bottom that needs it, a learnable param, or
            # force_backward; data layers never backpropagate
            learns = any(p.requires_grad for p in layer_blobs(module))
            need = kind in (_MODULE, _PYTHON) and (
                self._force_backward or learns or any(needs.get(b.name) for b in layer.bottoms))
            propagate = tuple(
                bool(need and pd and (self._force_backward or needs.get(b.name)))
                for b, pd in zip(layer.bottoms, layer.propagate_down))
            for t in layer.tops:
                needs[t.name] = needs.get(t.name, False) or need
            refill: tuple[bool, ...] = ()
            if kind == _DUMMY and isinstance(module, CaffeDummyData):
                refill = tuple(f.type != "constant" for f in module.fillers)
            steps.append(_Step(layer.name, layer.type, kind, module, layer.bottoms,
                               layer.tops, propagate, need, refill))
        steps, loss = _insert_splits(steps, ir.loss_weights())
        self._steps = steps
        self._record = net.phase == "TRAIN" or self._force_backward
        self._saved: dict[int, tuple[list[torch.Tensor], tuple[torch.Tensor, ...]]] = {}
        device = next((p.device for p in net.parameters()), current_device())
        self._on_device = device.type != "cpu"
        shapes = dict(net._version_shapes)
        self.blobs: OrderedDict[str, Blob] = OrderedDict()
        available: dict[str, None] = {}  # Net::Init's available_blobs: the net outputs
        for s in steps:
            for b in s.bottoms:
                available.pop(b.name, None)
            for t in s.tops:
                available[t.name] = None
                if t.name in self.blobs:
                    continue
                if s.kind == _SPLIT:  # SplitLayer shares its bottom's data (ShareData)
                    self.blobs[t.name] = Blob(torch.zeros(0, device=device))
                    self.blobs[t.name]._data = self.blobs[s.bottoms[0].name]._data
                else:
                    self.blobs[t.name] = Blob(torch.zeros(shapes[t], device=device))
        self._layers = [LayerView(s) for s in steps]
        # pycaffe's net.layers: a Python layer is the layer's own object, so a script can
        # call its methods (py-faster-rcnn's train.py: solver.net.layers[0].set_roidb(...))
        self._public_layers = [s.module.layer if s.kind == _PYTHON else view
                               for s, view in zip(steps, self._layers)]
        self._layer_names = [s.name for s in steps]
        self.inputs = [t.name for s in steps if s.type == "Input" for t in s.tops]
        self.outputs = sorted(available)  # std::set order, as Caffe lists them
        self.blob_loss_weights = OrderedDict((n, float(loss.get(n, 0.0))) for n in self.blobs)
        for name, weight in loss.items():  # Layer::SetLossWeights: the top's diff
            self.blobs[name].diff[...] = weight
        self._memory: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self._callbacks: dict[str, list[Callable[[int], Any]]] = {
            "before_forward": [], "after_forward": [], "before_backward": [],
            "after_backward": []}
        for s in steps:  # DummyData fills its tops at setup
            if s.kind == _DUMMY:
                with torch.no_grad():
                    for ref, value in zip(s.tops, _as_tuple(s.module())):
                        self.blobs[ref.name].set_tensor(value)

    # ------------------------------------------------------------------ structure

    @property
    def layers(self) -> list[Any]:
        return self._public_layers

    @property
    def layer_dict(self) -> OrderedDict[str, Any]:
        return OrderedDict(zip(self._layer_names, self._public_layers))

    @property
    def params(self) -> OrderedDict[str, BlobVec]:
        return OrderedDict((n, ly.blobs) for n, ly in zip(self._layer_names, self._layers)
                           if len(ly.blobs) > 0)

    @property
    def top_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict((s.name, [t.name for t in s.tops]) for s in self._steps)

    @property
    def bottom_names(self) -> OrderedDict[str, list[str]]:
        return OrderedDict((s.name, [b.name for b in s.bottoms]) for s in self._steps)

    @property
    def _blob_names(self) -> list[str]:
        return list(self.blobs)

    @property
    def _blobs(self) -> list[Blob]:
        return list(self.blobs.values())

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self.blob_loss_weights.values())

    def _top_ids(self, i: int) -> list[int]:
        names = self._blob_names
        return [names.index(t.name) for t in self._steps[i].tops]

    def _bottom_ids(self, i: int) -> list[int]:
        names = self._blob_names
        return [names.index(b.name) for b in self._steps[i].bottoms]

    @property
    def name(self) -> str:
        """The net's name. BVLC's pycaffe Net has no such property, so a script may set the
        attribute as its own (Fast R-CNN's and py-faster-rcnn's test_net.py name the net
        after its caffemodel, which names their output folder): that value is kept."""
        return self.__dict__.get("_script_name", self._net.name)

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["_script_name"] = value

    @property
    def caffe_net(self) -> CaffeNet:
        """The underlying nn.Module (shares every parameter with this Net)."""
        return self._net

    # ------------------------------------------------------------------ forward

    def _index(self, layer: str | None, default: int) -> int:
        if layer is None:
            return default
        try:
            return self._layer_names.index(layer)
        except ValueError:
            raise CaffeError(f"the net has no layer '{layer}'") from None

    def forward(self, blobs: Iterable[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """Net.forward: set the given inputs, run layers ``start``..``end`` (names,
        inclusive) and return {blob: data} for the outputs (or ``end``'s tops) and
        ``blobs``."""
        extra = list(blobs or [])
        for name, value in kwargs.items():
            self._set_input(name, value)
        first = self._index(start, 0)
        last = self._index(end, len(self._steps) - 1)
        self._forward_from_to(first, last)
        names = set(self.outputs if end is None else self.top_names[end]) | set(extra)
        return {n: self.blobs[n].data for n in names}

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        return self.forward(*args, **kwargs)

    def _set_input(self, name: str, value: Any) -> None:
        if name not in self.inputs:
            raise CaffeError(f"'{name}' is not an input of the net "
                             f"(inputs: {', '.join(self.inputs) or 'none'})")
        arr = np.asarray(value)
        blob = self.blobs[name]
        if arr.ndim and blob.shape and arr.shape[0] != blob.shape[0]:
            raise CaffeError(f"input '{name}' is not batch sized: {arr.shape[0]} rows for a "
                             f"blob of {blob.shape[0]}",
                             hint="reshape the blob (net.blobs[name].reshape(...)) first, "
                             "or use forward_all")
        blob.data[...] = arr

    def _write_back_params(self) -> None:
        """Param values a script wrote through ``.data`` / ``.diff`` reach the net before it
        uses them: on a GPU they go back to the device (SyncedMemory's gpu_data), and on
        any device the layers forget what they derived from the params (numpy writes
        leave torch's version counters as they were)."""
        self._net.forget_param_caches()
        if self._on_device:
            for ly in self._layers:
                for view in ly.blobs._views:
                    view.write_back()

    def _forward_from_to(self, first: int, last: int) -> float:
        self._write_back_params()
        loss = 0.0
        drawn: dict[str, torch.Tensor] | None = None
        cb = self._callbacks
        for i in range(first, last + 1):
            for f in cb["before_forward"]:
                f(i)
            s = self._steps[i]
            self._saved.pop(i, None)
            if s.kind == _FED:
                if drawn is None:
                    drawn = self._stream() if self._stream is not None else {}
                tops = [drawn[t.name] for t in s.tops]
                if type(s.module).__name__ != "DataInput":
                    with torch.no_grad():
                        tops = list(_as_tuple(s.module(*tops)))
                for ref, value in zip(s.tops, tops):
                    self.blobs[ref.name].write_tensor(value)
            elif s.kind == _MEMORY:
                self._memory_forward(i, s)
            elif s.kind == _DUMMY:
                if any(s.refill):
                    with torch.no_grad():
                        for ref, value, again in zip(s.tops, _as_tuple(s.module()), s.refill):
                            if again:
                                self.blobs[ref.name].write_tensor(value)
            elif s.kind == _PYTHON:
                self._python_forward(s)
            elif s.kind == _MODULE:
                self._module_forward(i, s)
            # _SPLIT: its tops share the bottom's data already
            for ref in s.tops:
                w = self.blob_loss_weights.get(ref.name, 0.0)
                if w:
                    loss += w * float(self.blobs[ref.name].tensor().sum())
            for f in cb["after_forward"]:
                f(i)
        return loss

    def _module_forward(self, i: int, s: _Step) -> None:
        bottoms = [self.blobs[b.name].tensor() for b in s.bottoms]
        if self._record and s.need_backward:
            # an in-place top whose array a script holds is written into the bottom's
            # storage below: the graph keeps its own copy of that input
            held = {id(self.blobs[t.name]._data) for t in s.tops if self.blobs[t.name].held}
            leaves = [(b.detach().clone() if id(self.blobs[ref.name]._data) in held
                       else b.detach()).requires_grad_(p)
                      for b, ref, p in zip(bottoms, s.bottoms, s.propagate)]
            with torch.enable_grad():
                outs = _as_tuple(s.module(*leaves))
            self._saved[i] = (leaves, outs)
        else:
            with torch.no_grad():
                outs = _as_tuple(s.module(*bottoms))
        for ref, value in zip(s.tops, outs):
            if self.blobs[ref.name].set_tensor(value):
                self._forget_readers(i, ref)

    def _forget_readers(self, i: int, ref: BlobRef) -> None:
        """Step ``i`` wrote new values into ``ref``'s storage: the graphs other layers
        recorded on that storage (an input, or an output that was the blob's tensor) are
        dropped; their backward runs their forward again on the current data, which is
        what Caffe's backward reads."""
        where = self.blobs[ref.name]._data.tensor.untyped_storage().data_ptr()
        for j in [j for j in self._saved if j != i]:
            leaves, outs = self._saved[j]
            if any(t.untyped_storage().data_ptr() == where for t in (*leaves, *outs)):
                del self._saved[j]

    def _python_forward(self, s: _Step) -> None:
        layer = s.module.layer
        layer.phase = layer_phase(self.phase == TRAIN)
        bottoms = [self.blobs[b.name] for b in s.bottoms]
        tops = [self.blobs[t.name] for t in s.tops]
        layer.reshape(bottoms, tops)
        layer.forward(bottoms, tops)

    def _memory_forward(self, i: int, s: _Step) -> None:
        if i not in self._memory:
            raise CaffeError(f"MemoryData layer '{s.name}' has no data",
                             hint="call net.set_input_arrays(data, labels) first")
        data, labels, pos = self._memory[i]
        batch = s.module.shapes[0][0]
        device = self.blobs[s.tops[0].name].tensor().device
        d = torch.from_numpy(data[pos:pos + batch]).to(device)
        lab = torch.from_numpy(labels[pos:pos + batch]).reshape(batch, 1, 1, 1).to(device)
        self._memory[i] = (data, labels, (pos + batch) % len(data))
        self.blobs[s.tops[0].name].write_tensor(d)
        if len(s.tops) > 1:
            self.blobs[s.tops[1].name].write_tensor(lab)

    def set_input_arrays(self, data: np.ndarray, labels: np.ndarray,
                         layer_idx: int = 0) -> None:
        """MemoryDataLayer::Reset for the MemoryData layer at ``layer_idx``: the net reads
        ``batch_size`` rows at each forward, wrapping around."""
        s = self._steps[layer_idx] if 0 <= layer_idx < len(self._steps) else None
        if s is None or s.kind != _MEMORY:
            raise CaffeError(f"layer {layer_idx} is not a MemoryData layer",
                             hint="set_input_arrays feeds a MemoryData layer")
        data = np.ascontiguousarray(data, dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.float32).reshape(-1)
        if data.ndim != 4 or len(labels) != len(data):
            raise CaffeError("set_input_arrays needs 4-D data and one label per row "
                             f"(got data {data.shape}, {len(labels)} labels)")
        shape = s.module.shapes[0]
        if tuple(data.shape[1:]) != tuple(shape[1:]):
            raise CaffeError(f"data rows of {data.shape[1:]} do not fit MemoryData layer "
                             f"'{s.name}' ({tuple(shape[1:])})")
        if len(data) % shape[0]:
            raise CaffeError(f"{len(data)} rows is not a multiple of the batch size "
                             f"{shape[0]}")
        self._memory[layer_idx] = (data, labels, 0)

    # ------------------------------------------------------------------ backward

    def backward(self, diffs: Iterable[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """Net.backward: set the given top diffs, run layers ``start``..``end`` backwards
        and return {blob: diff} for the inputs (or ``end``'s bottoms) and ``diffs``."""
        extra = list(diffs or [])
        for name, value in kwargs.items():
            if name not in self.outputs:
                raise CaffeError(f"'{name}' is not an output of the net "
                                 f"(outputs: {', '.join(self.outputs)})")
            self.blobs[name].diff[...] = value
        first = self._index(start, len(self._steps) - 1)
        last = self._index(end, 0)
        self._backward_from_to(first, last)
        names = set(self.inputs if end is None else self.bottom_names[end]) | set(extra)
        return {n: self.blobs[n].diff for n in names}

    def _top_grad(self, ref: BlobRef, grads: dict[BlobRef, torch.Tensor]) -> torch.Tensor:
        g = grads.get(ref)
        return g if g is not None else self.blobs[ref.name].diff_tensor()

    def _backward_from_to(self, first: int, last: int) -> None:
        self._write_back_params()
        grads: dict[BlobRef, torch.Tensor] = {}
        cb = self._callbacks
        for i in range(first, last - 1, -1):
            for f in cb["before_backward"]:
                f(i)
            s = self._steps[i]
            if s.need_backward:
                if s.kind == _PYTHON:
                    got = self._python_backward(s, grads)
                elif s.kind == _SPLIT:  # SplitLayer::Backward: the sum of the tops' diffs
                    total = self._top_grad(s.tops[0], grads)
                    for t in s.tops[1:]:
                        total = total + self._top_grad(t, grads)
                    got = {s.bottoms[0]: total} if s.propagate[0] else {}
                else:
                    got = self._module_backward(i, s, grads)
                for ref, g in got.items():
                    total = grads[ref] + g if ref in grads else g
                    grads[ref] = total
                    self.blobs[ref.name].set_diff(total)
            for f in cb["after_backward"]:
                f(i)

    def _module_backward(self, i: int, s: _Step, grads: dict[BlobRef, torch.Tensor]
                         ) -> dict[BlobRef, torch.Tensor]:
        saved = self._saved.pop(i, None)
        if saved is None:  # no recorded graph: the forward again, on the current data
            leaves = [self.blobs[b.name].tensor().detach().requires_grad_(p)
                      for b, p in zip(s.bottoms, s.propagate)]
            with torch.enable_grad():
                outs = _as_tuple(s.module(*leaves))
        else:
            leaves, outs = saved
        pairs = [(o, self._top_grad(t, grads)) for o, t in zip(outs, s.tops)
                 if o.requires_grad]
        if not pairs:
            return {}
        wanted = [x for x, p in zip(leaves, s.propagate) if p]
        params = [p for p in s.module.parameters() if p.requires_grad]
        got = torch.autograd.grad([o for o, _ in pairs],
                                  wanted + params,
                                  [g.reshape(o.shape).to(o.dtype) for o, g in pairs],
                                  allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, got[len(wanted):]):
                if g is not None:  # Caffe accumulates param diffs
                    ensure_grad(p).add_(g)
        out: dict[BlobRef, torch.Tensor] = {}
        it = iter(got[:len(wanted)])
        for ref, p in zip(s.bottoms, s.propagate):
            if p:
                g = next(it)
                if g is not None:
                    out[ref] = g
        return out

    def _python_backward(self, s: _Step, grads: dict[BlobRef, torch.Tensor]
                         ) -> dict[BlobRef, torch.Tensor]:
        tops = [Blob(self.blobs[t.name].tensor(), self._top_grad(t, grads).clone())
                for t in s.tops]
        bottoms = [Blob(self.blobs[b.name].tensor()) for b in s.bottoms]
        try:
            s.module.layer.backward(tops, list(s.propagate), bottoms)
        except Exception as exc:
            raise mark_user_code_error(exc, f"in Python layer '{s.name}', during backward") \
                from None
        return {ref: b.diff_tensor() for ref, b, p in zip(s.bottoms, bottoms, s.propagate)
                if p}

    # ------------------------------------------------------------------ batches

    # Any values: the batches go to forward/backward as **kwargs (blob name -> rows)
    def _batch(self, arrays: dict[str, np.ndarray]) -> Iterable[dict[str, Any]]:
        """Split {blob: rows} into the net's batches; the last one padded with zeros."""
        if not arrays:
            return
        first = next(iter(arrays))
        n = len(arrays[first])
        size = self.blobs[first].shape[0]
        for start in range(0, n, size):
            chunk = {}
            for name, rows in arrays.items():
                part = np.asarray(rows[start:start + size])
                if len(part) < size:
                    pad = np.zeros((size - len(part), *part.shape[1:]), dtype=part.dtype)
                    part = np.concatenate([part, pad])
                chunk[name] = part
            yield chunk

    def forward_all(self, blobs: Iterable[str] | None = None, **kwargs: Any
                    ) -> dict[str, np.ndarray]:
        """Net.forward_all: forward every batch of the given inputs; {blob: all rows}."""
        names = list(set(self.outputs) | set(blobs or []))
        collected: dict[str, list[np.ndarray]] = {n: [] for n in names}
        inputs = {k: v for k, v in kwargs.items() if k in self.inputs}
        for batch in self._batch(inputs):
            out = self.forward(blobs=blobs, **batch)
            for n in names:
                collected[n].extend(copy.deepcopy(out[n]))
        result = {n: np.asarray(v) for n, v in collected.items()}
        if inputs:
            n_rows = len(next(iter(inputs.values())))
            result = {n: v[:n_rows] for n, v in result.items()}
        return result

    def backward_all(self, diffs: Iterable[str] | None = None, **kwargs: Any
                     ) -> dict[str, np.ndarray]:
        """Net.backward_all: backward every batch of the given output diffs."""
        names = list(set(self.inputs) | set(diffs or []))
        collected: dict[str, list[np.ndarray]] = {n: [] for n in names}
        given = {k: v for k, v in kwargs.items() if k in self.outputs}
        for batch in self._batch(given):
            out = self.backward(diffs=diffs, **batch)
            for n in names:
                collected[n].extend(copy.deepcopy(out[n]))
        result = {n: np.asarray(v) for n, v in collected.items()}
        if given:
            n_rows = len(next(iter(given.values())))
            result = {n: v[:n_rows] for n, v in result.items()}
        return result

    def forward_backward_all(self, blobs: Iterable[str] | None = None,
                             diffs: Iterable[str] | None = None, **kwargs: Any
                             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Net.forward_backward_all: forward and backward every batch of the given inputs
        and output diffs; ({blob: all rows}, {blob: all diff rows})."""
        outs: dict[str, list[np.ndarray]] = {n: [] for n in set(self.outputs) | set(
            blobs or [])}
        grads: dict[str, list[np.ndarray]] = {n: [] for n in set(self.inputs) | set(
            diffs or [])}
        fwd = list(self._batch({k: v for k, v in kwargs.items() if k in self.inputs}))
        bwd = list(self._batch({k: v for k, v in kwargs.items() if k in self.outputs}))
        for k in range(max(len(fwd), len(bwd))):
            got = self.forward(blobs=blobs, **(fwd[k] if k < len(fwd) else {}))
            back = self.backward(diffs=diffs, **(bwd[k] if k < len(bwd) else {}))
            for n, v in got.items():
                outs[n].extend(v.copy())
            for n, v in back.items():
                grads[n].extend(v.copy())
        rows = len(next(iter(kwargs.values()))) if kwargs else None
        all_outs = {n: np.asarray(v)[:rows] for n, v in outs.items()}
        all_diffs = {n: np.asarray(v)[:rows] for n, v in grads.items()}
        return all_outs, all_diffs

    # -- the C++ Net's own methods, which some scripts call directly

    def _forward(self, start: int, end: int) -> float:
        """Net::ForwardFromTo by layer indices; returns the loss."""
        return self._forward_from_to(int(start), int(end))

    def _backward(self, start: int, end: int) -> None:
        """Net::BackwardFromTo by layer indices."""
        self._backward_from_to(int(start), int(end))

    @property
    def _inputs(self) -> list[int]:
        return [self._blob_names.index(n) for n in self.inputs]

    @property
    def _outputs(self) -> list[int]:
        return [self._blob_names.index(n) for n in self.outputs]

    def _set_input_arrays(self, data: np.ndarray, labels: np.ndarray,
                          layer_idx: int = 0) -> None:
        self.set_input_arrays(data, labels, layer_idx)

    # ------------------------------------------------------------------ shapes

    def reshape(self) -> None:
        """Net::Reshape: every layer sets its tops' shapes from its bottoms'."""
        from caffe2torch.layers.registry import infer_top_shapes

        for s in self._steps:
            if s.kind == _PYTHON:
                s.module.layer.reshape([self.blobs[b.name] for b in s.bottoms],
                                       [self.blobs[t.name] for t in s.tops])
                continue
            if s.kind != _MODULE:
                continue
            shapes = infer_top_shapes(s.module, [self.blobs[b.name].shape for b in s.bottoms])
            for ref, shape in zip(s.tops, shapes):
                self.blobs[ref.name].reshape(*shape)

    # ------------------------------------------------------------------ params

    def clear_param_diffs(self) -> None:
        """Net::ClearParamDiffs: zero every param diff in place."""
        with torch.no_grad():
            for p in self._net.parameters():
                ensure_grad(p).zero_()

    def copy_from(self, weights: Any) -> None:
        """Net::CopyTrainedLayersFrom: a caffemodel or an HDF5 caffemodel, by content."""
        self._net.copy_from(os.fspath(weights) if isinstance(weights, os.PathLike)
                            else weights)

    def save(self, filename: Any) -> None:
        """Net::ToProto + WriteProtoToBinaryFile: a caffemodel, with the field numbers of
        the schema the net was read with (a fork's under `run --proto`)."""
        self._net.save_caffemodel(os.fspath(filename), self._net.proto)

    def save_hdf5(self, filename: Any) -> None:
        from caffe2torch.solver.snapshot import write_hdf5_caffemodel

        write_hdf5_caffemodel(self._net, os.fspath(filename))

    def load_hdf5(self, filename: Any) -> None:
        self.copy_from(filename)

    def share_with(self, other: Net) -> None:
        """Net::ShareTrainedLayersWith: layers named as in ``other`` use its params."""
        from caffe2torch.graph.builder import share_trained_layers

        share_trained_layers(self._net, other._net)

    # ------------------------------------------------------------------ hooks

    def before_forward(self, callback: Callable[[int], Any]) -> None:
        self._callbacks["before_forward"].append(callback)

    def after_forward(self, callback: Callable[[int], Any]) -> None:
        self._callbacks["after_forward"].append(callback)

    def before_backward(self, callback: Callable[[int], Any]) -> None:
        self._callbacks["before_backward"].append(callback)

    def after_backward(self, callback: Callable[[int], Any]) -> None:
        self._callbacks["after_backward"].append(callback)

    def __repr__(self) -> str:
        return f"<caffe.Net {self.name!r} ({'TRAIN' if self.phase == TRAIN else 'TEST'}), " \
               f"{len(self._steps)} layers>"


def _insert_splits(steps: list[_Step], loss_weights: dict[BlobRef, float]
                   ) -> tuple[list[_Step], dict[str, float]]:
    """Caffe's InsertSplits (insert_splits.cpp): a top read by several layers (a loss
    weight counts as one more reader) gets a Split layer right after its producer,
    ``<blob>_<layer>_<top index>_split``, whose tops ``..._split_<k>`` go to the readers in
    net order (top 0 keeps the loss weight when there is one). Returns the steps and the
    loss weights by blob name."""
    readers: dict[BlobRef, list[tuple[int, int]]] = {}
    for i, s in enumerate(steps):
        for j, b in enumerate(s.bottoms):
            readers.setdefault(b, []).append((i, j))
    bottoms = [list(s.bottoms) for s in steps]
    after: dict[int, list[_Step]] = {}
    loss = {ref.name: w for ref, w in loss_weights.items()}
    for i, s in enumerate(steps):
        for j, top in enumerate(s.tops):
            users = readers.get(top, [])
            weight = loss_weights.get(top, 0.0)
            count = len(users) + (1 if weight else 0)
            if count < 2:
                continue
            base = f"{top.name}_{s.name}_{j}_split"
            tops = tuple(BlobRef(f"{base}_{k}") for k in range(count))
            first = 1 if weight else 0
            for k, (ci, bj) in enumerate(users):
                bottoms[ci][bj] = tops[first + k]
            if weight:
                loss.pop(top.name, None)
                loss[tops[0].name] = weight
            module = nn.Module()
            module.blobs = nn.ParameterList()
            need = any(steps[ci].propagate[bj] for ci, bj in users)  # a reader wants a diff
            after.setdefault(i, []).append(_Step(
                base, "Split", _SPLIT, module, (top,), tops, (need,), need))
    out: list[_Step] = []
    for i, s in enumerate(steps):
        out.append(dataclasses.replace(s, bottoms=tuple(bottoms[i])))
        out.extend(after.get(i, []))
    return out, loss


def _build(source: Any, phase: str, level: int, stages: Sequence[str]) -> CaffeNet:
    from caffe2torch.graph.fed import build_fed_net
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir import NetState

    _ensure_caffe_layer_module()
    fork = schema.active()  # `run --proto`: the fork's numbers for the net and its weights
    if isinstance(source, (str, os.PathLike)):
        net_param, source_map = read_net_with_positions(os.fspath(source), fork)
    elif fork is not None and not schema.is_ours(source):  # a message of the fork's caffe_pb2
        from google.protobuf import text_format

        from caffe2torch.io.text import read_net_text_with_positions

        net_param, source_map = read_net_text_with_positions(
            text_format.MessageToString(source), None, fork)
    else:
        net_param, source_map = source, None
    state = NetState.of(phase, level, stages)
    net = build_fed_net(net_param, state, cwd=os.getcwd(), source_map=source_map,
                        device=current_device(), options={"allow_python_layers": True},
                        num_workers=0)
    net.proto = fork
    return net
