"""A net's deploy view as a standalone, readable PyTorch file plus its weights.

The file needs only torch: each layer is a line or two of ``torch.nn.functional`` with
constants (see pysource), Caffe rules without a torch equivalent are small classes written
into the file, variables carry the Caffe blob names (an in-place layer reassigns its blob),
and every parameter is an attribute named after its layer (a shared Caffe param is one
attribute). Weights go to ``<stem>.pt`` (the module's state_dict) and, when the
safetensors package is installed, ``<stem>.safetensors``.
"""

from __future__ import annotations

import keyword
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from caffe2torch.errors import ExportError, WriteError
from caffe2torch.export.deploy import DeployView, blob_label, deploy_view
from caffe2torch.export.pysource import emit_layer
from caffe2torch.graph import CaffeNet
from caffe2torch.graph.names import identifier
from caffe2torch.layers.emit import Emit, ModuleSource
from caffe2torch.layers.portable import portable_names, sources

_TAKEN = ("self", "torch", "F", "nn", "math", "os")


@dataclass
class ConvertReport:
    """What convert_net wrote."""

    path: str
    class_name: str
    inputs: list[str]
    outputs: list[str]
    weight_files: list[str] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def class_name_for(net_name: str) -> str:
    ident = identifier(net_name or "CaffeNet").strip("_") or "CaffeNet"
    name = "".join(part[:1].upper() + part[1:] for part in ident.split("_") if part)
    if not name or name[0].isdigit() or keyword.iskeyword(name) or name in _TAKEN:
        name = "Net" + name
    return name


class _Vars:
    """Blob names -> Python variable names (unique, never a module name in the file)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        # a blob named like a copied function would hide it inside forward
        self.used: set[str] = set(_TAKEN) | set(portable_names())

    def __call__(self, blob: str) -> str:
        if blob not in self.names:
            base = identifier(blob)
            name, n = base, 1
            while name in self.used:
                n += 1
                name = f"{base}_{n}"
            self.names[blob] = name
            self.used.add(name)
        return self.names[blob]


def generate(view: DeployView, class_name: str, stem: str, source: str) -> tuple[str, ModuleSource]:
    """The file's text and the generated module's state."""
    net = view.net
    out = ModuleSource(identifier)
    names = _Vars()
    shapes = net._version_shapes
    body: list[str] = []
    for pos, layer in enumerate(net.ir.layers):
        if layer.is_data:
            continue
        module = net._modules_in_order[pos]
        e = Emit(
            layer=layer,
            module=module,
            bottoms=[names(b.name) for b in layer.bottoms],
            tops=[names(t.name) for t in layer.tops],
            bottom_shapes=[shapes[b] for b in layer.bottoms],
            top_shapes=[shapes[t] for t in layer.tops],
            out=out,
            base=identifier(layer.name),
        )
        _label_params(e)
        lines = emit_layer(e)
        shape_text = ", ".join("x".join(map(str, shapes[t])) for t in layer.tops)
        comment = f"# {layer.name} ({layer.type})" + (f" -> {shape_text}" if shape_text else "")
        if lines and lines[0].startswith("#"):
            body.extend(lines)
        else:
            body.append(comment)
            body.extend(lines)
    inputs = [names(n) for n in view.inputs]
    outputs = view.outputs
    if len(outputs) == 1:
        ret = f"return {names(outputs[0])}"
        ret_type = "torch.Tensor"
    else:
        pairs = ", ".join(f"{o!r}: {names(o)}" for o in outputs)
        ret = f"return {{{pairs}}}"
        ret_type = "dict[str, torch.Tensor]"
    text = _file_text(view, class_name, stem, source, out, inputs, body, ret, ret_type)
    return text, out


def _label_params(e: Emit) -> None:
    """Give the emitter's ``param(i, what)`` the registry's blob names (weight, bias...)."""
    original = e.param
    layer_type = e.layer.type

    def param(index: int, what: str = "") -> str:
        return original(index, what or blob_label(layer_type, index))

    e.param = param  # type: ignore[method-assign]


def _file_text(
    view: DeployView, class_name: str, stem: str, source: str, out: ModuleSource,
    inputs: Sequence[str], body: Sequence[str], ret: str, ret_type: str,
) -> str:
    net = view.net
    shapes = net.blob_shapes
    in_doc = ", ".join(f"{n} ({'x'.join(map(str, shapes[n]))})" for n in view.inputs)
    out_doc = ", ".join(f"{n} ({'x'.join(map(str, shapes[n]))})" for n in view.outputs)
    lines = [
        f'"""{class_name}: the Caffe net {net.name!r} ({source}) as plain PyTorch.',
        "",
        "Needs only torch. Weights: the state_dict in " + f"{stem}.pt beside this file.",
        "",
        f"    model = load_model()          # {class_name}() with its weights, in eval mode",
        f"    out = model({', '.join(inputs)})",
        "",
        f"Inputs: {in_doc or 'none'}. Outputs: {out_doc}.",
        "Images are BGR, 0-255, minus the mean, as the Caffe net expects them.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import math  # noqa: F401",
        "import os",
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
        "",
        "",
    ]
    for text in sources(out.helpers):  # the layers' functional core, copied
        lines.append(text.strip("\n"))
        lines += ["", ""]
    lines += [
        f"class {class_name}(nn.Module):",
        f'    """{net.name or "The net"}: {sum(not ly.is_data for ly in net.ir.layers)} layers, '
        f'inputs {list(view.inputs)}, outputs {list(view.outputs)} (any batch size)."""',
        "",
        f"    inputs = {tuple(view.inputs)!r}",
        f"    outputs = {tuple(view.outputs)!r}",
        "",
        "    def __init__(self) -> None:",
        "        super().__init__()",
    ]
    lines += [f"        {line}" for line in out.init]
    args = ", ".join(f"{n}: torch.Tensor" for n in inputs)
    lines += [
        "",
        f"    def forward(self{', ' if args else ''}{args}) -> {ret_type}:",
    ]
    lines += [f"        {line}" for line in body]
    lines += [f"        {ret}", "", ""]
    lines += [
        f"def load_model(weights: str | None = None) -> {class_name}:",
        f'    """{class_name} with its weights ({stem}.pt beside this file by default)."""',
        f"    model = {class_name}()",
        "    if weights is None:",
        f'        weights = os.path.join(os.path.dirname(os.path.abspath(__file__)), "{stem}.pt")',
        '    state = torch.load(weights, map_location="cpu", weights_only=True)',
        "    model.load_state_dict(state)",
        "    return model.eval()",
        "",
        "",
        'if __name__ == "__main__":',
        "    model = load_model()",
    ]
    feeds = ", ".join(
        f"torch.rand({', '.join(map(str, shapes[n]))})" for n in view.inputs
    )
    lines += [
        "    with torch.no_grad():",
        f"        result = model({feeds})",
        "    results = result if isinstance(result, dict) else {model.outputs[0]: result}",
        "    for name, value in results.items():",
        '        print(name, tuple(value.shape))',
        "",
    ]
    return "\n".join(lines)


def convert_net(
    net: CaffeNet | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    weights: Any = None,
    outputs: Sequence[str] | None = None,
    branch: Sequence[str] | str | None = None,
    phase: str = "TEST",
    class_name: str | None = None,
    input_shapes: Any = None,
    safetensors: bool = True,
    keep_losses: bool = False,
) -> ConvertReport:
    """Write ``path`` (a .py file) and its weights beside it (see the module doc).
    ``keep_losses``: keep loss and Accuracy layers (their tops become outputs)."""
    if isinstance(net, CaffeNet):
        source_net = net
        source = "built in memory"
        if weights is not None:
            source_net.copy_from(weights)
    else:
        from caffe2torch.graph import load_net

        source_net = load_net(net, weights=weights, phase=phase, input_shapes=input_shapes)
        source = f"from {Path(net).name}"
    branches = [branch] if isinstance(branch, str) else list(branch or [])
    view = deploy_view(source_net, outputs, branches, keep_losses)
    view.net.eval()
    target = Path(path)
    stem = target.stem
    cls = class_name or class_name_for(source_net.name)
    text, out = generate(view, cls, stem, source)
    try:
        compile(text, str(target), "exec")
    except SyntaxError as exc:  # a bug of ours, never the user's: say so plainly
        raise ExportError(f"the generated source does not compile: {exc}") from exc
    report = ConvertReport(str(target), cls, list(view.inputs), list(view.outputs),
                           helpers=list(out.helpers), dropped=view.dropped)
    state = {k: v.contiguous() for k, v in out.state.items()}
    try:
        target.write_text(text)
        pt = target.with_suffix(".pt")
        torch.save(state, pt)
        report.weight_files.append(str(pt))
        if safetensors:
            try:
                from safetensors.torch import save_file
            except ImportError:
                pass
            else:
                st = target.with_suffix(".safetensors")
                save_file(state, str(st))
                report.weight_files.append(str(st))
    except OSError as exc:
        raise WriteError(f"cannot write {target}: {exc.strerror or exc}", path=str(target)) from exc
    return report
