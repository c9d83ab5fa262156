"""Layer-by-layer comparison of our net with real Caffe's blobs (or with an exported ONNX
model run by onnxruntime): which layer is the first to diverge.

Caffe's blobs come as a dump: an ``.npz`` whose keys are blob names (also accepted:
``blob/<name>`` and ``input/<name>``, the golden-data layout), or a folder of ``<name>.npy``
files (a ``/`` in a blob name written as ``__``). pycaffe writes one in five lines::

    import sys, numpy as np, caffe
    net = caffe.Net(sys.argv[1], sys.argv[2], caffe.TEST)
    for name in net.inputs: net.blobs[name].data[...] = np.load(sys.argv[3])[name]
    net.forward()
    np.savez(sys.argv[4], **{n: b.data for n, b in net.blobs.items()})

(``python dump.py deploy.prototxt w.caffemodel inputs.npz blobs.npz``; ``inputs.npz`` holds
an array per input blob, e.g. a preprocessed image.)

Our net is fed the dump's values of its input blobs. Each blob is compared where Caffe's
order finishes it (after its last in-place layer: the value pycaffe shows), so the rows
follow Caffe's layer order; a row is named by the layer that makes the blob, with the
in-place layers after it listed (the dump cannot tell them apart). A row fails when
``max |ours - theirs| > atol + rtol * max |theirs|``; the report names the first failing
layer with its type and parameters.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caffe2torch.errors import ParseError
from caffe2torch.graph import CaffeNet

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5


class DumpError(ParseError):
    """A blob dump (or ONNX file) that cannot be read or does not fit the net (exit 2)."""


@dataclass
class Row:
    """One blob, at the layer that finishes it."""

    layer: str
    type: str
    blob: str
    max_abs: float
    max_rel: float  # max_abs / max |reference|
    ok: bool
    note: str = ""  # why the blob was not compared
    in_place: list[str] = field(default_factory=list)  # later layers writing the blob in place


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # our blobs the dump does not have
    first_bad: Row | None = None
    first_bad_params: str = ""  # the layer's prototxt text (without weights)

    @property
    def ok(self) -> bool:
        return self.first_bad is None and any(not r.note for r in self.rows)


def read_dump(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Blob name -> array from an .npz or a folder of .npy files (see the module doc)."""
    p = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        if p.is_dir():
            files = sorted(p.glob("*.npy"))
            if not files:
                raise DumpError(f"{p}: no .npy files in the folder",
                                hint="one <blob>.npy per blob ('/' in a name as '__')")
            for f in files:
                out[f.stem] = np.load(f)  # numpy refuses pickled objects by default
            return out
        with np.load(p) as data:  # no pickles (numpy's default)
            for key in data.files:
                name = key.split("/", 1)[1] if key.startswith(("blob/", "input/")) else key
                if key.startswith(("top_diff/", "bottom_diff/", "param/", "param_diff/")):
                    continue
                out[name] = data[key]
    except DumpError:
        raise
    except (OSError, ValueError) as exc:
        raise DumpError(f"cannot read blob dump {p}: {exc}",
                        hint="give an .npz (np.savez) or a folder of .npy files") from exc
    return out


def _lookup(dump: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    if name in dump:
        return dump[name]
    return dump.get(name.replace("/", "__"))


def writers(net: CaffeNet, blob: str) -> list[int]:
    """Positions of the layers that write ``blob`` (its producer, then in-place layers)."""
    return [pos for pos, layer in enumerate(net.ir.layers)
            if any(t.name == blob for t in layer.tops)]


def finishing_layers(net: CaffeNet) -> list[tuple[int, str]]:
    """(layer position, blob name) for every blob at the last layer that writes it, in
    Caffe's order."""
    last: dict[str, int] = {}
    for pos, layer in enumerate(net.ir.layers):
        for top in layer.tops:
            if not top.name.startswith("("):
                last[top.name] = pos
    out = [(pos, name) for name, pos in last.items()]
    return sorted(out, key=lambda item: (item[0], item[1]))


def _diff(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, float]:
    theirs = np.asarray(theirs, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64)
    delta = np.abs(ours - theirs)
    both_nan = np.isnan(ours) & np.isnan(theirs)
    delta = np.where(both_nan, 0.0, delta)
    max_abs = float(np.nan_to_num(delta, nan=np.inf).max()) if delta.size else 0.0
    finite = np.abs(theirs[np.isfinite(theirs)])
    scale = float(finite.max()) if finite.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    return max_abs, max_rel


def layer_params_text(net: CaffeNet, layer_name: str) -> str:
    """The layer's prototxt text without its weights (what the report shows)."""
    from google.protobuf import text_format

    from caffe2torch.proto import caffe_pb2

    proto = caffe_pb2.LayerParameter()
    proto.CopyFrom(net.ir.layer(layer_name).proto)
    proto.ClearField("blobs")
    return text_format.MessageToString(proto).strip()


def _rows(net: CaffeNet, dump: dict[str, np.ndarray], ours: dict[str, Any],
          rtol: float, atol: float) -> Comparison:
    result = Comparison()
    inputs = set(net.inputs)
    for pos, name in finishing_layers(net):
        if net.ir.layers[pos].is_data or name in inputs:
            continue
        chain = [net.ir.layers[p] for p in writers(net, name)]
        layer, in_place = chain[0], [ly.name for ly in chain[1:]]
        theirs = _lookup(dump, name)
        if theirs is None:
            result.missing.append(name)
            continue
        mine = ours.get(name)
        if mine is None:
            result.rows.append(Row(layer.name, layer.type, name, math.nan, math.nan, True,
                                   "not computed here", in_place))
            continue
        mine_np = mine.detach().float().cpu().numpy() if torch.is_tensor(mine) else \
            np.asarray(mine, np.float32)
        if mine_np.size == theirs.size and mine_np.shape != theirs.shape:
            mine_np = mine_np.reshape(theirs.shape)  # a loss: 0-d here, (1,) in Caffe
        if mine_np.shape != theirs.shape:
            row = Row(layer.name, layer.type, name, math.inf, math.inf, False,
                      f"shape {list(mine_np.shape)} here, {list(theirs.shape)} in the dump",
                      in_place)
        else:
            max_abs, max_rel = _diff(mine_np, theirs)
            scale = max_abs / max_rel if max_rel not in (0.0, math.inf) and max_rel == max_rel \
                else 0.0
            ok = max_abs <= atol + rtol * scale or max_abs == 0.0
            row = Row(layer.name, layer.type, name, max_abs, max_rel, ok, "", in_place)
        result.rows.append(row)
        if not row.ok and result.first_bad is None:
            result.first_bad = row
            result.first_bad_params = "\n".join(layer_params_text(net, ly.name)
                                                 for ly in chain)
    return result


def _inputs_from(net: CaffeNet, dump: dict[str, np.ndarray]) -> list[torch.Tensor]:
    feeds = []
    for name in net.inputs:
        value = _lookup(dump, name)
        if value is None:
            raise DumpError(f"the dump has no value for the input blob '{name}'",
                            hint="dump every blob of net.blobs, the inputs included")
        feeds.append(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
    return feeds


def compare_with_caffe(net: CaffeNet, dump: dict[str, np.ndarray], rtol: float = DEFAULT_RTOL,
                       atol: float = DEFAULT_ATOL) -> Comparison:
    """Our net on the dump's inputs, blob by blob against the dump, in Caffe's order."""
    feeds = _inputs_from(net, dump)
    names = [n for _, n in finishing_layers(net) if _lookup(dump, n) is not None]
    net.eval()
    with torch.no_grad():
        ours = net(*feeds, blobs=names)
    return _rows(net, dump, dict(ours), rtol, atol)


def onnx_layer_outputs(model: Any, net: CaffeNet) -> dict[str, str]:
    """Blob name -> the ONNX value holding it: the output of the node group of the layer
    that finishes the blob (nodes named ``<layer>`` or ``<layer>/<OpType>[_k]``, as the
    exporter names them), the group's outputs read outside it, in top order."""
    graph = model.graph
    readers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.name)
    graph_outputs = {o.name for o in graph.output}
    layer_names = set(net.layer_names)
    groups: dict[str, list[Any]] = {}
    for node in graph.node:
        if node.name in layer_names:
            groups.setdefault(node.name, []).append(node)
            continue
        head, _, tail = node.name.rpartition("/")
        if head in layer_names and tail.split("_")[0] == node.op_type:
            groups.setdefault(head, []).append(node)
    out: dict[str, str] = {}
    for pos, blob in finishing_layers(net):
        layer = net.ir.layers[pos]
        nodes = groups.get(layer.name)
        if not nodes:
            if blob in graph_outputs:
                out[blob] = blob
            continue
        own = {n.name for n in nodes}
        leaving = [v for n in nodes for v in n.output
                   if v in graph_outputs or readers.get(v, set()) - own]
        tops = [t.name for t in layer.tops]
        if blob in graph_outputs:
            out[blob] = blob
        elif len(leaving) == len(tops):
            out[blob] = leaving[tops.index(blob)]
        elif len(tops) == 1 and leaving:
            out[blob] = leaving[-1]
    return out


def onnx_intermediates(path: str | os.PathLike[str], net: CaffeNet,
                       feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime's value of every blob onnx_layer_outputs finds, for ``feeds``."""
    import onnx
    import onnxruntime as ort

    try:
        model = onnx.load(os.fspath(path))
    except Exception as exc:
        raise DumpError(f"cannot read ONNX model {path}: {exc}"[:300]) from exc
    values = onnx_layer_outputs(model, net)
    present = {o.name for o in model.graph.output}
    for name in dict.fromkeys(values.values()):
        if name not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
            model.graph.output[-1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(model.SerializeToString(), opts,
                                       providers=["CPUExecutionProvider"])
        wanted = {i.name for i in session.get_inputs()}
        names = [o.name for o in session.get_outputs()]
        got = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
    except Exception as exc:
        raise DumpError(f"onnxruntime cannot run {path}: {exc}"[:400]) from exc
    by_value = dict(zip(names, got))
    return {blob: by_value[v] for blob, v in values.items() if v in by_value}


def compare_with_onnx(net: CaffeNet, onnx_path: str | os.PathLike[str],
                      dump: dict[str, np.ndarray] | None = None, rtol: float = DEFAULT_RTOL,
                      atol: float = DEFAULT_ATOL, batch: int = 1, seed: int = 0) -> Comparison:
    """onnxruntime's intermediate values against ours, layer by layer, on the dump's
    inputs (or data-like inputs of ``batch`` when no dump is given)."""
    from caffe2torch.export.verify import data_like_inputs

    made = data_like_inputs(net, batch, seed) if dump is None else None
    feeds_t = made if made is not None else _inputs_from(net, dump or {})
    feeds = {n: t.numpy() for n, t in zip(net.inputs, feeds_t)}
    theirs = onnx_intermediates(onnx_path, net, feeds)
    net.eval()
    with torch.no_grad():
        ours = net(*feeds_t, blobs=list(theirs))
    ours_np = {k: v.detach().float().numpy() for k, v in dict(ours).items()}
    # PyTorch is the reference here; onnxruntime's values are the ones checked
    return _rows(net, ours_np, theirs, rtol, atol)
