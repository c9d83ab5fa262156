"""Paired data layers: the towers of a Siamese/triplet net, each fed by its own list file,
line i of every list forming pair i.

The one place that says which layers are pairwise losses and list-reading data layers, and
which data layers feed one pairwise loss. The linter's metric rules and ir's wiring both
read it.
"""

from __future__ import annotations

from typing import Any

from caffe2torch.ir.problems import Problem, locate, problem

PAIRWISE = frozenset({"ContrastiveLoss", "TripletLoss", "GeneralContrastiveLoss",
                      "GeneralTripletLoss"})
# data layers that read a list (one file line per sample) -> their parameter block
LIST_DATA = {"ImageData": "image_data_param", "HDF5Data": "hdf5_data_param"}


def batch_size(layer: Any) -> int:
    """The batch_size of a list-reading data layer (caffe_pb2.LayerParameter)."""
    return int(getattr(layer, LIST_DATA[layer.type]).batch_size)


def feeding_data(layers: list[Any], bottoms: list[str], at: int) -> list[int]:
    """The list-reading data layers (their positions in ``layers``, the layers of one
    state in order) upstream of the ``bottoms`` of layer ``at``: each blob is the top of
    the last layer before its reader that writes it (in-place layers included)."""
    found: list[int] = []
    seen: set[tuple[str, int]] = set()
    todo = [(b, at) for b in bottoms]
    while todo:
        blob, before = todo.pop()
        if (blob, before) in seen:
            continue
        seen.add((blob, before))
        writer = next((k for k in range(before - 1, -1, -1) if blob in layers[k].top), None)
        if writer is None:
            continue
        if layers[writer].type in LIST_DATA:
            if writer not in found:
                found.append(writer)
            continue
        todo.extend((b, writer) for b in layers[writer].bottom)
    return sorted(found)


def pair_batch_problems(net: Any, order: list[int], phase: str,
                        source_map: Any) -> list[Problem]:
    """Towers of one pairwise loss fed with different batch sizes.

    BVLC Caffe sets the towers up without complaint and stops only at the loss:
    LossLayer::Reshape's 'Check failed: bottom[0]->shape(0) == bottom[1]->shape(0) (64 vs.
    32) The data and label should have the same first dimension.', which names neither data
    layer. The problem is placed on the batch_size of the first tower that differs."""
    layers = [net.layer[i] for i in order]
    out: list[Problem] = []
    reported: set[int] = set()
    for pos, lp in enumerate(layers):
        if lp.type not in PAIRWISE:
            continue
        data = feeding_data(layers, list(lp.bottom), pos)
        if len(data) < 2:
            continue
        first = layers[data[0]]
        size0 = batch_size(first)
        for d in data[1:]:
            other = layers[d]
            size = batch_size(other)
            index = order[d]
            if size == size0 or index in reported:
                continue
            reported.add(index)
            field = f"{LIST_DATA[other.type]}.batch_size"
            line0 = locate(source_map, order[data[0]], f"{LIST_DATA[first.type]}.batch_size")
            line1 = locate(source_map, index, field)
            where0 = f" (line {line0.line})" if line0.line is not None else ""
            where1 = f" (line {line1.line})" if line1.line is not None else ""
            summary = (f"the paired data layers '{first.name}'{where0} and '{other.name}'"
                       f"{where1} feeding {lp.type} '{lp.name}' have batch_size {size0} and "
                       f"{size}: pair i is line i of each list, so both towers must read "
                       "batches of one size")
            message = (f"{summary} (in the {phase} phase; BVLC Caffe stops later, at "
                       f"'{lp.name}', with 'Check failed: bottom[0]->shape(0) == "
                       f"bottom[1]->shape(0) ({size0} vs. {size}) The data and label should "
                       "have the same first dimension')")
            out.append(problem(
                "C2T330", message, summary=summary, layer=other.name, index=index,
                field=field, phase=phase, source_map=source_map,
                hint=f"give '{first.name}' and '{other.name}' the same batch_size "
                f"(both {size0}, or both {size})"))
    return out
