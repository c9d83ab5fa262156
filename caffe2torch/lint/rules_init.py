"""Net::Init's refusals, as the builder finds them: ir wires the net of each checked state
(ir.wire_net, ir.param_problems) and this module renders its problems, one finding per
problem with the states it occurs in. Nothing here decides what Caffe refuses; the rules
live in ir, so the linter and the builder cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass, field

from caffe2torch.io.positions import LayerPos
from caffe2torch.ir.graph import wire_net
from caffe2torch.ir.params import param_problems
from caffe2torch.ir.problems import Problem
from caffe2torch.ir.shapes import Shape, infer, param_shapes
from caffe2torch.layers.typeinfo import type_kind
from caffe2torch.lint.context import Context
from caffe2torch.lint.parse import NetView
from caffe2torch.lint.states import StateView, phases_text, unavoidable

# Findings about a layer as written, whatever the state: shown without phases.
_STATELESS = frozenset({"C2T203", "C2T301", "C2T302", "C2T303"})


class _Places:
    """The linter's layer positions (repaired text) in the shape ir's problems read."""

    path = None

    def __init__(self, positions: list[LayerPos | None]) -> None:
        self.positions = positions

    def layer(self, i: int) -> LayerPos | None:
        return self.positions[i]


@dataclass
class Found:
    """One problem and the labels of the states in which ir found it."""

    problem: Problem
    states: list[StateView] = field(default_factory=list)

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(sv.label for sv in self.states))


def _state_problems(view: NetView, sv: StateView, places: _Places) -> list[Problem]:
    """Every problem of one state: its wiring, then its params (blob shapes from the
    torch-free shape pass; a blob whose shape is unknown is not compared)."""
    ir = wire_net(view.net, sv.state, kind_of=type_kind, source_map=places)
    shapes = infer(view.layers, sv.indices)
    blob_shapes: dict[int, list[Shape | None]] = {}
    for pos, layer in enumerate(ir.layers):
        if not layer.params:
            continue  # its blobs are nobody's business here: nothing is shared or set
        lp = view.layers[layer.index]
        found = param_shapes(lp, shapes.bottoms.get(layer.index, []))
        blob_shapes[pos] = found if found is not None else [None] * len(layer.params)
    _, params = param_problems(ir, blob_shapes, source_map=places)
    return ir.problems + params


def net_init_problems(view: NetView, states: list[StateView]) -> dict[tuple, Found]:
    """ir's problems of every checked state, merged across states."""
    places = _Places(view.positions)
    found: dict[tuple, Found] = {}
    for sv in states:
        for p in _state_problems(view, sv, places):
            found.setdefault(p.key, Found(p)).states.append(sv)
    return found


def check_net_init(ctx: Context, view: NetView, states: list[StateView]) -> set[int]:
    """Report ir's problems; returns the layers with a bottom no earlier layer makes (the
    graph rules leave their tops alone)."""
    broken: set[int] = set()
    for f in net_init_problems(view, states).values():
        p = f.problem
        phases = f.phases
        if p.code == "C2T201" and not unavoidable(phases, states):
            continue
        if p.code == "C2T202":
            # two stages may exclude each other: only states of one stage or none count
            phases = tuple(dict.fromkeys(sv.label for sv in f.states
                                         if len(sv.state.stages) <= 1))
            if not phases:
                continue
        if p.code == "C2T201":
            broken.add(p.index)
        if p.code == "C2T301" and not view.layers[p.index].type:
            _untyped(ctx, view, p)
            continue
        message = p.summary if p.code in _STATELESS else f"{p.summary} in {phases_text(phases)}"
        ctx.report(p.code, message, p.place.line, p.place.col, help=p.hint, layer=p.layer,
                   phases=() if p.code in _STATELESS else phases)
    return broken


def _untyped(ctx: Context, view: NetView, p: Problem) -> None:
    blk = view.positions[p.index] if p.index < len(view.positions) else None
    if blk is not None and any(blk.start_line <= ln <= blk.end_line for ln in ctx.untyped_ok):
        return  # its misspelt enum type was reported (C2T104)
    ctx.report("C2T301", f"layer '{p.layer}' has no type", p.place.line, p.place.col,
               layer=p.layer, help='add `type: "..."`')
