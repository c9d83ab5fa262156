"""The blob DAG of a NetIR -> a torch.fx GraphModule, written node by node (no tracing).

One placeholder per graph input (the tops of data layers), one ``call_module`` per layer
(named by the layer's identifier), ``getitem`` for layers with several tops, and an output
dict keyed by Caffe blob names. fx's code generator frees each value after its last use,
so ``print(gm.code)`` reads like a hand-written straight-line forward.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from torch import fx, nn

from caffe2torch.ir.graph import BlobRef, NetIR


def is_passthrough(module: nn.Module) -> bool:
    """A data layer module that only hands its fed tensors on (no call needed)."""
    from caffe2torch.layers.inputs import DataInput

    return type(module) is DataInput


def build_graph(
    ir: NetIR,
    modules: Sequence[nn.Module],
    attrs: Sequence[str],
    input_args: dict[BlobRef, str],
    outputs: Sequence[tuple[str, BlobRef]],
) -> fx.Graph:
    """The fx graph of ``ir``: ``modules[i]`` (attribute ``attrs[i]`` of the root) computes
    layer ``i``; ``input_args`` names the placeholder of each graph input; ``outputs`` are
    the (key, blob) pairs of the returned dict."""
    graph = fx.Graph()
    env: dict[BlobRef, fx.Node] = {}
    for ref in ir.inputs:
        env[ref] = graph.placeholder(input_args[ref])
    for pos, layer in enumerate(ir.layers):
        module, attr = modules[pos], attrs[pos]
        if layer.is_data:
            if is_passthrough(module):
                continue
            args: tuple[fx.Node, ...] = tuple(env[t] for t in layer.tops)
        else:
            args = tuple(
                env[b] if keep else _detached(graph, env[b])
                for b, keep in zip(layer.bottoms, layer.propagate_down)
            )
        name = layer.tops[0].name if len(layer.tops) == 1 else layer.name
        node = graph.create_node("call_module", attr, args, {}, name=name)
        if len(layer.tops) == 1:
            env[layer.tops[0]] = node
        else:
            for k, top in enumerate(layer.tops):
                env[top] = graph.create_node(
                    "call_function", operator.getitem, (node, k), {}, name=top.name
                )
    graph.output({key: env[ref] for key, ref in outputs})
    graph.lint()
    return graph


def _detached(graph: fx.Graph, node: fx.Node) -> fx.Node:
    """Caffe's ``propagate_down: false``: no gradient flows into this bottom."""
    return graph.create_node("call_method", "detach", (node,), {}, name=f"{node.name}_nograd")
