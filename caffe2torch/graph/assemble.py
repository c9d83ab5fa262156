"""The blob DAG of a NetIR -> a torch.fx GraphModule, written node by node (no tracing).

One placeholder per graph input (the tops of data layers), one ``call_module`` per layer
(named by the layer's identifier), ``getitem`` for layers with several tops, and an output
dict keyed by Caffe blob names. fx's code generator frees each value after its last use,
so ``print(gm.code)`` reads like a hand-written straight-line forward.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Protocol, runtime_checkable

from torch import fx, nn

from caffe2torch.ir.graph import BlobRef, NetIR


@runtime_checkable
class FoldsBatchNorm(Protocol):
    """A layer module (Scale) that can run fused with the BatchNorm just before it."""

    def can_fold(self, bn: nn.Module) -> bool: ...

    def fold(self, bn: Any) -> None: ...


def is_passthrough(module: nn.Module) -> bool:
    """A data layer module that only hands its fed tensors on (no call needed)."""
    from caffe2torch.layers.bvlc.inputs import DataInput

    return type(module) is DataInput


def build_graph(
    ir: NetIR,
    modules: Sequence[nn.Module],
    attrs: Sequence[str],
    input_args: dict[BlobRef, str],
    outputs: Sequence[tuple[str, BlobRef]],
    conv_folds: dict[str, nn.Module] | None = None,
) -> fx.Graph:
    """The fx graph of ``ir``: ``modules[i]`` (attribute ``attrs[i]`` of the root) computes
    layer ``i``; ``input_args`` names the placeholder of each graph input; ``outputs`` are
    the (key, blob) pairs of the returned dict. ``conv_folds``: fold Convolution +
    BatchNorm (+ Scale) chains (graph.fold), their modules added to it by attribute."""
    graph = fx.Graph()
    env: dict[BlobRef, fx.Node] = {}
    for ref in ir.inputs:
        env[ref] = graph.placeholder(input_args[ref])
    chains: dict[int, tuple[int, ...]] = {}
    if conv_folds is not None:
        from caffe2torch.graph.fold import conv_norm_chains, make_fold

        chains = conv_norm_chains(ir, modules, outputs)
    in_chain = {m: pos for pos, members in chains.items() for m in members}
    folded = _foldable_batch_norms(ir, modules, outputs, skip=set(chains) | set(in_chain))
    inplace = _inplace_relus(ir, modules, outputs, folded)
    for pos, layer in enumerate(ir.layers):
        module, attr = modules[pos], attrs[pos]
        if pos in in_chain:  # computed by the convolution it is folded into
            env[layer.tops[0]] = env[ir.layers[in_chain[pos]].tops[0]]
            continue
        if pos in chains and conv_folds is not None:
            fold_attr = f"{attr}__folded"
            conv_folds[fold_attr] = make_fold(modules, pos, chains[pos])
            last = ir.layers[chains[pos][-1]]
            node = graph.create_node("call_module", fold_attr, (env[layer.bottoms[0]],), {},
                                     name=last.tops[0].name)
            env[layer.tops[0]] = node
            continue
        if pos in folded:  # the next layer (its Scale) computes both
            env[layer.tops[0]] = env[layer.bottoms[0]]
            continue
        if pos - 1 in folded:
            node = graph.create_node("call_module", attr, (env[layer.bottoms[0]],),
                                     {"folded": True}, name=layer.tops[0].name)
            env[layer.tops[0]] = node
            continue
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
        kwargs: dict[str, fx.node.Argument] = {"inplace": True} if pos in inplace else {}
        node = graph.create_node("call_module", attr, args, kwargs, name=name)
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


def _foldable_batch_norms(
    ir: NetIR, modules: Sequence[nn.Module], outputs: Sequence[tuple[str, BlobRef]],
    skip: AbstractSet[int] = frozenset(),
) -> set[int]:
    """Positions of BatchNorm layers whose only consumer is the next layer, a Scale working
    in place on the BatchNorm's top (the ResNet pattern): the pair runs as one call, and
    the normalised intermediate is never visible (only a blob's final version is)."""
    uses = Counter(b for layer in ir.layers for b in layer.bottoms)
    uses.update(ref for _, ref in outputs)
    out = set()
    for pos in range(len(ir.layers) - 1):
        bn, sc = ir.layers[pos], ir.layers[pos + 1]
        if pos in skip or pos + 1 in skip:
            continue
        scale = modules[pos + 1]
        if not (isinstance(scale, FoldsBatchNorm) and scale.can_fold(modules[pos])):
            continue
        if (len(bn.bottoms) == 1 and len(bn.tops) == 1 and len(sc.bottoms) == 1
                and len(sc.tops) == 1 and sc.bottoms[0] == bn.tops[0]
                and sc.tops[0].name == bn.tops[0].name and uses[bn.tops[0]] == 1
                and all(bn.propagate_down) and all(sc.propagate_down)
                and not bn.is_data and not any(bn.loss_weights)):
            scale.fold(modules[pos])
            out.add(pos)
    return out


def _fresh_output_types() -> tuple[type, ...]:
    """Modules whose top is a new tensor that autograd does not keep for their backward,
    so a following in-place ReLU may overwrite it."""
    from caffe2torch.layers.bvlc.normalization import CaffeBatchNorm, CaffeScale
    from caffe2torch.layers.bvlc.vision import (
        CaffeConvolution,
        CaffeInnerProduct,
        CaffeLRN,
        CaffePooling,
    )

    return (CaffeConvolution, CaffeInnerProduct, CaffeBatchNorm, CaffeScale, CaffeLRN,
            CaffePooling)


def _inplace_relus(
    ir: NetIR, modules: Sequence[nn.Module], outputs: Sequence[tuple[str, BlobRef]],
    folded: set[int],
) -> set[int]:
    """Positions of in-place (top == bottom) ReLU layers that may overwrite their bottom as
    Caffe does: the bottom was made by the layer just before (a convolution, an inner
    product, a normalisation, a pooling: a fresh tensor autograd does not keep) and nothing
    else reads that version. Saves one activation per ReLU, as nn.ReLU(inplace=True)."""
    from caffe2torch.layers.bvlc.blob_ops import SUM as ELTWISE_SUM
    from caffe2torch.layers.bvlc.blob_ops import CaffeEltwise
    from caffe2torch.layers.bvlc.neuron import CaffeReLU

    fresh = _fresh_output_types()
    uses = Counter(b for layer in ir.layers for b in layer.bottoms)
    uses.update(ref for _, ref in outputs)
    out = set()
    for pos in range(1, len(ir.layers)):
        layer, prev = ir.layers[pos], ir.layers[pos - 1]
        relu = modules[pos]
        if not (isinstance(relu, CaffeReLU) and relu.negative_slope >= 0):
            continue
        if pos - 1 in folded or pos - 1 in out:
            continue
        producer = modules[pos - 1]
        eltwise_sum = isinstance(producer, CaffeEltwise) and producer.operation == ELTWISE_SUM
        if not (isinstance(producer, fresh) or eltwise_sum) or getattr(
                producer, "with_mask", False):
            continue
        if (len(layer.bottoms) == 1 and len(prev.tops) == 1 and layer.bottoms[0] == prev.tops[0]
                and layer.tops[0].name == layer.bottoms[0].name and uses[prev.tops[0]] == 1
                and all(layer.propagate_down) and not prev.is_data):
            out.add(pos)
    return out


def _detached(graph: fx.Graph, node: fx.Node) -> fx.Node:
    """Caffe's ``propagate_down: false``: no gradient flows into this bottom."""
    return graph.create_node("call_method", "detach", (node,), {}, name=f"{node.name}_nograd")
