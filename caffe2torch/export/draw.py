"""A net as a Graphviz drawing: layers (name, type, key settings) and blobs (name, shape),
for one NetState, filtered by the same code as the builder (ir.build_ir), so stages and
levels count (Caffe's draw_net.py ignores them).

DOT is written here; svg/png come from Graphviz's ``dot`` program when it is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from caffe2torch.errors import CaffeError, ExportError, WriteError
from caffe2torch.ir.graph import BlobRef, LayerIR, NetIR, build_ir
from caffe2torch.ir.netstate import NetState

RANKDIRS = ("LR", "TB", "BT", "RL")
FORMATS = ("dot", "svg", "png", "pdf")
_MAX_SETTINGS = 6  # key settings shown per layer

# fill colours by what a layer does
_COLORS = {
    "data": "#b8e0b8", "loss": "#f4b6b6", "conv": "#9ec9f0", "pool": "#f7d89a",
    "norm": "#d9c6ef", "neuron": "#e8e8e8", "other": "#ffffff",
}
_KIND_OF_TYPE = {
    "Convolution": "conv", "Deconvolution": "conv", "InnerProduct": "conv",
    "ConvolutionDepthwise": "conv", "DepthwiseConvolution": "conv", "Pooling": "pool",
    "SPP": "pool", "LRN": "norm", "BatchNorm": "norm", "Scale": "norm", "MVN": "norm",
    "BN": "norm", "Normalize": "norm", "ReLU": "neuron", "PReLU": "neuron", "Sigmoid": "neuron",
    "TanH": "neuron", "Dropout": "neuron", "ELU": "neuron", "Power": "neuron",
}


@dataclass
class Drawing:
    dot: str
    layers: int
    shapes_known: bool
    note: str | None = None  # why shapes are missing


def _kind_of(type_name: str) -> Any:
    from caffe2torch.build.builder import registry_kind

    return registry_kind(type_name)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _value_text(field: Any, value: Any) -> str:
    """One field's value as prototxt shows it (enum names; repeated values joined by x)."""
    if field.is_repeated:
        return "x".join(_value_text_one(field, v) for v in value)
    return _value_text_one(field, value)


def _value_text_one(field: Any, value: Any) -> str:
    if field.enum_type is not None:
        ev = field.enum_type.values_by_number.get(value)
        return ev.name if ev else str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def key_settings(layer: LayerIR) -> list[str]:
    """``name: value`` for the scalar fields the prototxt sets in the layer's *_param
    (fillers and other sub-messages left out), at most a few."""
    from google.protobuf.descriptor import FieldDescriptor

    from caffe2torch.layers.registry import find_layer_spec

    spec = find_layer_spec(layer.type)
    if spec is None or spec.param is None or not layer.proto.HasField(spec.param):
        return []
    msg = getattr(layer.proto, spec.param)
    out = []
    for field, value in msg.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            continue
        out.append(f"{field.name}: {_value_text(field, value)}")
        if len(out) == _MAX_SETTINGS:
            break
    return out


def _shapes(net_param: Any, state: NetState, input_shapes: Any) -> tuple[dict, str | None]:
    """Blob version -> shape from a build of the net, or ({}, why not)."""
    try:
        from caffe2torch.build import build_net

        net = build_net(net_param, state, input_shapes=input_shapes)
    except CaffeError as err:
        return {}, err.message
    return dict(net._version_shapes), None


def draw_net(
    net_param: Any,
    state: NetState | None = None,
    rankdir: str = "LR",
    input_shapes: Any = None,
    shapes: bool = True,
) -> Drawing:
    """The DOT text of ``net_param`` (an upgraded NetParameter) for ``state``."""
    state = state or NetState()
    if rankdir not in RANKDIRS:
        raise ExportError(f"rankdir must be one of {', '.join(RANKDIRS)}, not {rankdir!r}")
    ir = build_ir(net_param, state, kind_of=_kind_of)
    blob_shapes, note = _shapes(net_param, state, input_shapes) if shapes else ({}, None)
    return Drawing(_dot(ir, blob_shapes, rankdir), len(ir.layers), bool(blob_shapes), note)


def _dot(ir: NetIR, shapes: dict[BlobRef, tuple[int, ...]], rankdir: str) -> str:
    title = f"{ir.name or 'net'} ({ir.state.phase}"
    if ir.state.level:
        title += f", level {ir.state.level}"
    if ir.state.stages:
        title += f", stages {', '.join(ir.state.stages)}"
    title += ")"
    lines = [
        "digraph net {",
        f'  graph [rankdir={rankdir}, label="{_escape(title)}", labelloc=t, fontname=Helvetica];',
        "  node [fontname=Helvetica, fontsize=10];",
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    blob_ids: dict[BlobRef, str] = {}

    def blob_node(ref: BlobRef) -> str:
        if ref not in blob_ids:
            blob_ids[ref] = f"b{len(blob_ids)}"
            label = _escape(ref.name)
            if ref in shapes:
                label += "\\n" + ("x".join(map(str, shapes[ref])) or "scalar")
            lines.append(
                f'  {blob_ids[ref]} [label="{label}", shape=octagon, style=filled, '
                'fillcolor="#fff7d6"];'
            )
        return blob_ids[ref]

    for ref in ir.inputs:
        blob_node(ref)
    for i, layer in enumerate(ir.layers):
        lid = f"l{i}"
        kind = "data" if layer.is_data else "loss" if layer.kind.loss else _KIND_OF_TYPE.get(
            layer.type, "other"
        )
        parts = [layer.name, f"({layer.type})", *key_settings(layer)]
        if any(w for w in layer.loss_weights):
            parts.append("loss_weight: " + ", ".join(f"{w:g}" for w in layer.loss_weights))
        label = "\\n".join(_escape(p) for p in parts)
        lines.append(
            f'  {lid} [label="{label}", shape=box, style="rounded,filled", '
            f'fillcolor="{_COLORS[kind]}"];'
        )
        for b in layer.bottoms:
            lines.append(f"  {blob_node(b)} -> {lid};")
        for t in layer.tops:
            if t.name.startswith("("):  # a loss's anonymous top
                continue
            lines.append(f"  {lid} -> {blob_node(t)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def output_format(path: str, fmt: str | None = None) -> str:
    fmt = (fmt or os.path.splitext(path)[1].lstrip(".") or "dot").lower()
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise ExportError(
            f"cannot draw to '.{fmt}'", hint=f"use one of: {', '.join('.' + f for f in FORMATS)}"
        )
    return fmt


def write_drawing(drawing: Drawing, path: str, fmt: str | None = None) -> list[str]:
    """Write ``path`` (dot, svg, png or pdf). Without Graphviz's ``dot`` an image cannot
    be made: the DOT text goes beside it (``<stem>.dot``) and ExportError says so."""
    fmt = output_format(path, fmt)
    dot_path = path if fmt == "dot" else os.path.splitext(path)[0] + ".dot"
    if fmt == "dot":
        _write(dot_path, drawing.dot)
        return [dot_path]
    exe = shutil.which("dot")
    if exe is None:
        _write(dot_path, drawing.dot)
        raise ExportError(
            f"Graphviz's 'dot' program is not installed, so {path} was not drawn; "
            f"the graph was written to {dot_path}",
            hint="install Graphviz (Debian/Ubuntu: apt-get install graphviz) and run again, "
            f"or render it yourself: dot -T{fmt} {dot_path} -o {path}",
        )
    proc = subprocess.run(
        [exe, f"-T{fmt}", "-o", path], input=drawing.dot, text=True, capture_output=True
    )
    if proc.returncode != 0:
        _write(dot_path, drawing.dot)
        raise ExportError(
            f"Graphviz's dot failed to draw {path}: {proc.stderr.strip()[:300]}",
            hint=f"the graph was written to {dot_path}",
        )
    return [path]


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}", path=path) from exc


def layer_names(drawing: Drawing) -> Sequence[str]:
    """The layer labels' first lines (for tests and summaries)."""
    out = []
    for line in drawing.dot.splitlines():
        if "shape=box" in line:
            out.append(line.split('label="', 1)[1].split("\\n", 1)[0])
    return out
