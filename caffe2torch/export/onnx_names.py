"""Caffe names inside an exported ONNX graph.

Initializers: a layer's param blob is ``<layer>.<blob>``, the blob named as the layer
registry names it in caffemodel order (``conv1.weight``, ``conv1.bias``, ``bn1.mean``,
``bn1.variance``, ``bn1.scale_factor``, ``prelu1.slope``; ``<layer>.blob<i>`` for a type
with no names). A param shared between layers (``param { name: "w" }``) is one
initializer, named after the layer that owns it (the first that declares it, as in
Caffe's Net::AppendParam). Other tensors a layer keeps (buffers) are ``<layer>.<buffer>``.
The exporter merges initializers of equal value into one read through Identity nodes;
each such Identity is replaced by its own initializer, so every Caffe blob is exactly one
initializer. A constant the exporter folded from a blob (PReLU's slope, reshaped) takes the
blob's name; other folded constants read by one layer are ``<layer>/const``.

Nodes: a layer that became one ONNX node gets the layer's Caffe name; a layer that became
several gets ``<layer>/<OpType>`` (``_2``, ``_3``... when an op repeats).
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from caffe2torch.export.deploy import blob_label
from caffe2torch.graph import CaffeNet


def caffe_tensor_names(net: CaffeNet) -> dict[int, str]:
    """id(tensor) -> Caffe name (see the module doc) for every param blob and buffer of
    ``net``, the owner's name for a shared one."""
    names: dict[int, str] = {}
    for layer, module in zip(net.ir.layers, net._modules_in_order):
        for i, blob in enumerate(getattr(module, "blobs", ())):
            names.setdefault(id(blob), f"{layer.name}.{blob_label(layer.type, i)}")
        for key, buf in module.named_buffers():
            names.setdefault(id(buf), f"{layer.name}.{key}")
    return names


def torch_paths(root: nn.Module, net: CaffeNet) -> dict[str, str]:
    """The exporter's initializer names (module paths under ``root``) -> Caffe names."""
    by_id = caffe_tensor_names(net)
    out: dict[str, str] = {}
    for path, tensor in root.named_parameters(remove_duplicate=False):
        if id(tensor) in by_id:
            out[path] = by_id[id(tensor)]
    for path, buf in root.named_buffers(remove_duplicate=False):
        if id(buf) in by_id:
            out[path] = by_id[id(buf)]
    return out


def split_merged_initializers(model: Any) -> None:
    """Replace each ``Identity(initializer)`` by an initializer of its own (same value,
    the Identity's output name), so no Caffe blob is read through another's name."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            copy = numpy_helper.from_array(numpy_helper.to_array(inits[node.input[0]]),
                                           node.output[0])
            graph.initializer.append(copy)
            inits[copy.name] = copy
        else:
            keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input} | outputs
    unused = [t for t in graph.initializer if t.name not in used]
    for t in unused:
        graph.initializer.remove(t)


def rename_values(model: Any, mapping: dict[str, str]) -> None:
    """Rename graph values (initializers and every reference to them)."""
    graph = model.graph
    taken = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    taken |= {o for n in graph.node for o in n.output}
    final: dict[str, str] = {}
    for old, new in mapping.items():
        if old not in taken or old == new:
            continue
        name, k = new, 1
        while name in taken:
            k += 1
            name = f"{new}_{k}"
        taken.add(name)
        final[old] = name
    if not final:
        return
    for t in graph.initializer:
        t.name = final.get(t.name, t.name)
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = final.get(value.name, value.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in final:
                node.input[i] = final[name]
        for i, name in enumerate(node.output):
            if name in final:
                node.output[i] = final[name]


_SCOPE = re.compile(r"^/(?:net/)?(?:layers/)?([^/]+)/")


def rename_nodes(model: Any, net: CaffeNet) -> None:
    """Caffe layer names on the ONNX nodes (see the module doc)."""
    by_attr = {attr: name for name, attr in net.layer_attrs.items()}
    groups: dict[str, list[Any]] = {}
    for node in model.graph.node:
        m = _SCOPE.match(node.name)
        layer = by_attr.get(m.group(1)) if m else None
        if layer is not None:
            groups.setdefault(layer, []).append(node)
    taken = {n.name for n in model.graph.node}
    for layer, nodes in groups.items():
        if len(nodes) == 1:
            candidates = [layer]
        else:
            counts: dict[str, int] = {}
            candidates = []
            for node in nodes:
                counts[node.op_type] = counts.get(node.op_type, 0) + 1
                k = counts[node.op_type]
                candidates.append(f"{layer}/{node.op_type}" + (f"_{k}" if k > 1 else ""))
        for node, name in zip(nodes, candidates):
            if name not in taken:
                taken.discard(node.name)
                node.name = name
                taken.add(name)


def name_folded_constants(model: Any, net: CaffeNet) -> None:
    """Constants the exporter folded from one layer's blob (PReLU's slope reshaped for
    broadcasting) take that blob's name when exactly one blob of the layer of the same size
    is missing from the initializers; other constants read by one layer only are
    ``<layer>/const``. Run after rename_nodes."""
    from onnx import numpy_helper

    graph = model.graph
    blobs: dict[str, list[tuple[str, int]]] = {}
    for layer_ir, module in zip(net.ir.layers, net._modules_in_order):
        for i, blob in enumerate(getattr(module, "blobs", ())):
            name = f"{layer_ir.name}.{blob_label(layer_ir.type, i)}"
            blobs.setdefault(layer_ir.name, []).append((name, blob.numel()))
    present = {t.name for t in graph.initializer}
    readers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.name.split("/", 1)[0])
    mapping: dict[str, str] = {}
    for t in graph.initializer:
        layers = readers.get(t.name, set())
        if not t.name.startswith("onnx::") or len(layers) != 1:
            continue
        (layer,) = layers
        if layer not in blobs:
            continue
        size = numpy_helper.to_array(t).size
        missing = [n for n, k in blobs[layer] if k == size and n not in present]
        mapping[t.name] = missing[0] if len(missing) == 1 else f"{layer}/const"
        present.add(mapping[t.name])
    rename_values(model, mapping)


def caffe_names(model: Any, root: nn.Module, net: CaffeNet) -> None:
    """Every renaming of the module doc, in place."""
    split_merged_initializers(model)
    rename_values(model, torch_paths(root, net))
    rename_nodes(model, net)
    name_folded_constants(model, net)
