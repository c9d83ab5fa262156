"""A net as a Graphviz drawing: layers (name, type, key settings) and blobs (name, shape),
for one NetState, filtered by the same code as the builder (ir.build_ir), so stages and
levels count (Caffe's draw_net.py ignores them).

DOT and SVG are written here (SVG with Graphviz's ``dot`` when it is installed, else with
the built-in layered layout of export/svg.py); png/pdf need Graphviz.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from caffe2torch.errors import CaffeError, ExportError, WriteError
from caffe2torch.export.svg import Node, render_svg
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
    hint: str | None = None  # what would give them
    # the same graph for the built-in SVG writer
    nodes: tuple[Node, ...] = ()
    edges: tuple[tuple[str, str], ...] = ()
    title: str = ""
    rankdir: str = "LR"

    def svg(self) -> str:
        return render_svg(self.nodes, self.edges, self.rankdir, self.title)


def _kind_of(type_name: str) -> Any:
    from caffe2torch.graph.builder import registry_kind

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


def _shapes(net_param: Any, state: NetState, input_shapes: Any, share: Any = "declared",
            options: Mapping[str, Any] | None = None, source_map: Any = None,
            ) -> tuple[dict, str | None, str | None]:
    """Blob version -> shape from a build of the net, or ({}, why not, what to do)."""
    try:
        from caffe2torch.graph import build_net

        net = build_net(net_param, state, input_shapes=input_shapes, share=share,
                        options=options, source_map=source_map)
    except CaffeError as err:
        return {}, err.message, err.hint
    return dict(net._version_shapes), None, None


def draw_net(
    net_param: Any,
    state: NetState | None = None,
    rankdir: str = "LR",
    input_shapes: Any = None,
    shapes: bool = True,
    share: Any = "declared",
    options: Mapping[str, Any] | None = None,
    source_map: Any = None,
) -> Drawing:
    """The drawing of ``net_param`` (an upgraded NetParameter) for ``state``; ``share``
    and ``options`` (``allow_python_layers``...) are build_net's, for the shapes;
    ``source_map`` (io.read_net_with_positions') gives the builders the fields our schema
    lacks (a fork's, a plug-in's), which can change a shape, and locates errors."""
    state = state or NetState()
    if rankdir not in RANKDIRS:
        raise ExportError(f"rankdir must be one of {', '.join(RANKDIRS)}, not {rankdir!r}")
    ir = build_ir(net_param, state, kind_of=_kind_of, source_map=source_map)
    blob_shapes, note, hint = (_shapes(net_param, state, input_shapes, share, options,
                                       source_map) if shapes else ({}, None, None))
    nodes: list[Node] = []
    edges: list[tuple[str, str]] = []
    dot = _dot(ir, blob_shapes, rankdir, nodes, edges)
    return Drawing(dot, len(ir.layers), bool(blob_shapes), note, hint, tuple(nodes),
                   tuple(edges), _title(ir), rankdir)


def _title(ir: NetIR) -> str:
    title = f"{ir.name or 'net'} ({ir.state.phase}"
    if ir.state.level:
        title += f", level {ir.state.level}"
    if ir.state.stages:
        title += f", stages {', '.join(ir.state.stages)}"
    return title + ")"


def _dot(ir: NetIR, shapes: dict[BlobRef, tuple[int, ...]], rankdir: str,
         nodes: list[Node], edges: list[tuple[str, str]]) -> str:
    """The DOT text; ``nodes`` and ``edges`` receive the same graph for the SVG writer."""
    title = _title(ir)
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
            text = [ref.name]
            if ref in shapes:
                text.append("x".join(map(str, shapes[ref])) or "scalar")
                label += "\\n" + text[-1]
            nodes.append(Node(blob_ids[ref], tuple(text), "#fff7d6", blob=True))
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
        nodes.append(Node(lid, tuple(parts), _COLORS[kind], blob=False))
        lines.append(
            f'  {lid} [label="{label}", shape=box, style="rounded,filled", '
            f'fillcolor="{_COLORS[kind]}"];'
        )
        for b in layer.bottoms:
            lines.append(f"  {blob_node(b)} -> {lid};")
            edges.append((blob_ids[b], lid))
        for t in layer.tops:
            if t.name.startswith("("):  # a loss's anonymous top
                continue
            lines.append(f"  {lid} -> {blob_node(t)};")
            edges.append((lid, blob_ids[t]))
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


def write_drawing(drawing: Drawing, path: str, fmt: str | None = None,
                  layout: str = "auto") -> list[str]:
    """Write ``path`` (dot, svg, png or pdf). SVG comes from Graphviz's ``dot`` when it is
    installed (``layout="auto"`` or ``"graphviz"``), else (or with ``layout="builtin"``)
    from the built-in layout. Without Graphviz a png/pdf cannot be made: the DOT text goes
    beside it (``<stem>.dot``) and ExportError says so."""
    fmt = output_format(path, fmt)
    dot_path = path if fmt == "dot" else os.path.splitext(path)[0] + ".dot"
    if fmt == "dot":
        _write(dot_path, drawing.dot)
        return [dot_path]
    exe = shutil.which("dot") if layout != "builtin" else None
    if exe is None and fmt == "svg" and layout != "graphviz":
        _write(path, drawing.svg())
        return [path]
    if exe is None:
        _write(dot_path, drawing.dot)
        raise ExportError(
            f"Graphviz's 'dot' program is not installed, so {path} was not drawn; "
            f"the graph was written to {dot_path}",
            hint=f"write .svg instead (drawn without Graphviz), or install Graphviz "
            f"(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz) and run "
            f"again, or render it yourself: dot -T{fmt} {dot_path} -o {path}",
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
