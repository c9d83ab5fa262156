"""caffe.draw: a NetParameter as a Graphviz drawing, as pycaffe draws it: one box per
layer (name, type and, for convolutions and poolings, kernel/stride/pad), one octagon per
blob, edges bottom -> layer -> top; in-place layers loop on their blob.

``draw_net(net_param, rankdir, ext='png', phase=None)`` returns the image bytes made by
Graphviz's ``dot`` program; ``ext='dot'`` returns the DOT text and needs no Graphviz.
``phase=None`` draws every layer whatever its include/exclude rules (pycaffe's choice: no
wiring is checked); caffe.TRAIN / caffe.TEST draw the layers of that phase. Layers of V1
nets (``layers { type: CONVOLUTION }``) are drawn with their V2 type names.
``caffe2torch draw`` gives the checked drawing with blob shapes.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from caffe2torch.errors import ExportError
from caffe2torch.ir.netstate import NetState, layer_included
from caffe2torch.pycaffe.mode import phase_name

RANKDIRS = ("LR", "TB", "BT", "RL")
_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
           "InnerProduct": "#CC33FF"}
_BLOB_COLOR = "#E0E0E0"
_LAYER_COLOR = "#6495ED"


def _v1_type_name(layer: Any) -> str:
    # the enum of the layer's own schema: ours, or a fork's (`run --proto`)
    enum = layer.DESCRIPTOR.fields_by_name["type"].enum_type
    value = enum.values_by_number.get(layer.type)
    name = value.name if value is not None else str(layer.type)
    return {"INNER_PRODUCT": "InnerProduct", "SOFTMAX_LOSS": "SoftmaxWithLoss",
            "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "TANH": "TanH",
            "RELU": "ReLU", "BNLL": "BNLL", "LRN": "LRN", "ABSVAL": "AbsVal",
            "ARGMAX": "ArgMax"}.get(name, "".join(w.capitalize() for w in name.split("_")))


def _layers(net: Any, phase: Any) -> list[tuple[Any, str]]:
    found = [(ly, ly.type) for ly in net.layer]
    found += [(ly, _v1_type_name(ly)) for ly in net.layers]
    if phase is None:
        return found
    state = NetState.of(phase_name(phase))
    return [(ly, t) for ly, t in found if layer_included(ly, state)]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _geometry(layer: Any, type_name: str) -> str:
    def first(values: Any, default: int) -> int:
        return int(values[0]) if len(values) else default

    if type_name in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        k = p.kernel_h or first(p.kernel_size, 1)
        s = p.stride_h or first(p.stride, 1)
        pad = p.pad_h or first(p.pad, 0)
        return f"\\nkernel size: {k}\\nstride: {s}\\npad: {pad}"
    if type_name == "Pooling":
        p = layer.pooling_param
        kind = p.PoolMethod.Name(p.pool)
        return (f"\\npool type: {kind}\\nkernel size: {p.kernel_h or p.kernel_size}"
                f"\\nstride: {p.stride_h or p.stride}\\npad: {p.pad_h or p.pad}")
    return ""


def get_dot_text(caffe_net: Any, rankdir: str = "LR", phase: Any = None) -> str:
    """The DOT text of the net's layers (see the module docstring)."""
    if rankdir not in RANKDIRS:
        raise ExportError(f"rankdir must be one of {', '.join(RANKDIRS)}, not {rankdir!r}")
    lines = [f'digraph "{_escape(caffe_net.name or "net")}" {{',
             f"  rankdir={rankdir};", '  graph [label="" ];']
    blobs: dict[str, str] = {}

    def blob(name: str) -> str:
        if name not in blobs:
            blobs[name] = f"blob{len(blobs)}"
            lines.append(f'  {blobs[name]} [label="{_escape(name)}", shape=octagon, '
                         f'style=filled, fillcolor="{_BLOB_COLOR}"];')
        return blobs[name]

    for i, (layer, type_name) in enumerate(_layers(caffe_net, phase)):
        node = f"layer{i}"
        label = f"{_escape(layer.name)}\\n({_escape(type_name)}){_geometry(layer, type_name)}"
        color = _COLORS.get(type_name, _LAYER_COLOR)
        lines.append(f'  {node} [label="{label}", shape=record, style=filled, '
                     f'fillcolor="{color}"];')
        for b in layer.bottom:
            lines.append(f"  {blob(b)} -> {node};")
        for t in layer.top:
            lines.append(f"  {node} -> {blob(t)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_net(caffe_net: Any, rankdir: str, ext: str = "png", phase: Any = None,
             display_lrm: bool = False) -> bytes:
    """The net drawn in format ``ext`` (png, svg, pdf... through Graphviz, or dot)."""
    text = get_dot_text(caffe_net, rankdir, phase)
    if ext in ("dot", "gv", "raw"):
        return text.encode()
    exe = shutil.which("dot")
    if exe is None:
        raise ExportError(
            f"Graphviz's 'dot' program is not installed, so the net cannot be drawn as {ext}",
            hint="install Graphviz (Debian/Ubuntu: apt-get install graphviz), or ask for "
            "ext='dot' and render the text yourself")
    proc = subprocess.run([exe, f"-T{ext}"], input=text.encode(), capture_output=True)
    if proc.returncode != 0:
        raise ExportError(f"Graphviz's dot failed: {proc.stderr.decode()[:300].strip()}")
    return proc.stdout


def draw_net_to_file(caffe_net: Any, filename: str, rankdir: str = "LR", phase: Any = None,
                     display_lrm: bool = False) -> None:
    """Draw the net into ``filename``; its extension names the format."""
    ext = filename.rsplit(".", 1)[-1] if "." in filename else "png"
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, "wb") as f:
        f.write(data)
