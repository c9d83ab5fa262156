"""The parameter table of a net: who owns each param blob, who shares it, and the lr/decay
multipliers the solver uses. One implementation of Caffe's Net::AppendParam (net.cpp).

Rules reproduced:
* blob ``i`` of a layer takes ``param[i]`` when the layer has that many ``param`` entries;
  more ``param`` entries than blobs is refused ("Too many params specified").
* The first layer (net order) that declares a param *name* owns it; a later blob with the
  same name shares the owner's blob: STRICT (default) needs equal shapes, PERMISSIVE equal
  counts. Anonymous blobs are owned by their layer.
* Learnable params are the owned blobs in net order (Net::learnable_params_). Their lr_mult
  / decay_mult default to 1; a sharer that sets one the owner left unset supplies it, and a
  sharer that sets a different value than the owner set is refused.
* BatchNorm's statistics: each blob without a ``param`` gets lr_mult 0, and a ``param`` with
  lr_mult other than 0 is refused (BatchNormLayer::LayerSetUp).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from caffe2torch.ir.graph import LayerIR, NetIR, ParamDecl
from caffe2torch.ir.problems import Problem, problem, raise_first

Shape = tuple[int, ...]
Slot = tuple[int, int]  # (position of the layer in NetIR.layers, blob index)


@dataclass
class Learnable:
    """One entry of Caffe's learnable_params_: an owned blob and its multipliers."""

    layer: str  # layer name
    position: int  # the layer's position in NetIR.layers
    index: int
    name: str  # the param name ("" when anonymous)
    lr_mult: float
    decay_mult: float
    sharers: list[Slot] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        """Caffe's param_display_names_: the param name, else the blob index."""
        return self.name or str(self.index)


@dataclass
class ParamTable:
    """Every param blob of a net: its owner slot and its learnable entry."""

    owner: dict[Slot, Slot]  # slot -> owning slot (itself when it owns)
    learnable: list[Learnable]
    learnable_of: dict[Slot, int]  # slot -> index into learnable

    def is_owner(self, slot: Slot) -> bool:
        return self.owner[slot] == slot

    def shared(self) -> list[tuple[Slot, Slot]]:
        """(sharer, owner) pairs, in net order."""
        return [(s, o) for s, o in self.owner.items() if s != o]

    def multipliers(self, slot: Slot) -> tuple[float, float]:
        entry = self.learnable[self.learnable_of[slot]]
        return entry.lr_mult, entry.decay_mult


def _count(shape: Sequence[int | None]) -> int | None:
    if any(d is None for d in shape):
        return None
    return math.prod(int(d) for d in shape if d is not None)


def _shape_text(shape: Sequence[int | None]) -> str:
    count = _count(shape)
    dims = " ".join("?" if d is None else str(d) for d in shape)
    return dims + f" ({'?' if count is None else count})"


def _differ(a: Sequence[int | None], b: Sequence[int | None]) -> bool:
    """Shapes that certainly differ (an unknown size matches anything)."""
    return len(a) != len(b) or any(x is not None and y is not None and x != y
                                   for x, y in zip(a, b))


def resolve_params(
    net: NetIR,
    blob_shapes: Mapping[int, Sequence[Shape]],
    *,
    decls: Mapping[int, Sequence[ParamDecl]] | None = None,
    source_map: Any = None,
) -> ParamTable:
    """The parameter table of ``net`` whose layers have param blobs of ``blob_shapes``
    ({layer position: [shape, ...]}, caffemodel order). ``decls`` replaces the ``param``
    entries of the layers it names by position (used to add or remove sharing). Raises
    the first problem (:func:`param_problems` collects them all)."""
    table, problems = param_problems(net, blob_shapes, decls=decls, source_map=source_map)
    raise_first(problems)
    return table


def param_problems(
    net: NetIR,
    blob_shapes: Mapping[int, Sequence[Sequence[int | None] | None]],
    *,
    decls: Mapping[int, Sequence[ParamDecl]] | None = None,
    source_map: Any = None,
) -> tuple[ParamTable, list[Problem]]:
    """Net::AppendParam over every layer: the parameter table and every refusal, in net
    order. A shape, or a size in it, may be None (unknown: the linter's shapes); a shape
    check is then made only where the known sizes already differ."""
    owner: dict[Slot, Slot] = {}
    learnable: list[Learnable] = []
    learnable_of: dict[Slot, int] = {}
    by_name: dict[str, Slot] = {}  # param_names_index_
    has_lr: list[bool] = []
    has_decay: list[bool] = []
    shapes_of: dict[Slot, tuple[int | None, ...] | None] = {}
    problems: list[Problem] = []
    phase = net.state.phase

    def report(code: str, layer: LayerIR, k: int, message: str, hint: str | None) -> None:
        problems.append(problem(code, message, layer=layer.name, index=layer.index,
                                field="param", k=k, hint=hint, phase=phase,
                                source_map=source_map))

    for pos, layer in enumerate(net.layers):
        shapes = list(blob_shapes.get(pos, ()))
        params = list(decls[pos]) if decls and pos in decls else list(layer.params)
        if len(params) > len(shapes):
            report(
                "C2T309", layer, len(shapes),
                f"layer '{layer.name}' ({layer.type}): too many params specified: "
                f"{len(params)} param entries for {len(shapes)} param blob(s)",
                "remove the extra `param { }` blocks (e.g. the bias one when "
                "bias_term: false)",
            )
            params = params[: len(shapes)]
        if layer.type == "BatchNorm":
            params = _batchnorm_params(layer, params, len(shapes), report)
        for i, shape in enumerate(shapes):
            slot = (pos, i)
            shapes_of[slot] = None if shape is None else tuple(shape)
            spec = params[i] if i < len(params) else ParamDecl()
            refused = False
            if spec.name and spec.name in by_name:
                own = by_name[spec.name]
                refused = _check_share(layer, i, spec, net.layers[own[0]].name, own[1],
                                       shapes_of[own], shapes_of[slot], report)
            if not spec.name or spec.name not in by_name or refused:
                owner[slot] = slot
                if spec.name and not refused:
                    by_name[spec.name] = slot
                learnable_of[slot] = len(learnable)
                learnable.append(
                    Learnable(
                        layer=layer.name,
                        position=pos,
                        index=i,
                        name=spec.name,
                        lr_mult=1.0 if spec.lr_mult is None else spec.lr_mult,
                        decay_mult=1.0 if spec.decay_mult is None else spec.decay_mult,
                    )
                )
                has_lr.append(spec.lr_mult is not None)
                has_decay.append(spec.decay_mult is not None)
                continue
            own = by_name[spec.name]
            owner[slot] = own
            lid = learnable_of[own]
            learnable_of[slot] = lid
            entry = learnable[lid]
            entry.sharers.append(slot)
            for what, value, has in (("lr_mult", spec.lr_mult, has_lr),
                                     ("decay_mult", spec.decay_mult, has_decay)):
                if value is None:
                    continue
                current = getattr(entry, what)
                if has[lid] and value != current:
                    report(
                        "C2T325", layer, i,
                        f"layer '{layer.name}': shared param '{spec.name}' has mismatched "
                        f"{what} ({value} here, {current} in layer '{entry.layer}')",
                        f"give both the same {what}",
                    )
                    continue
                has[lid] = True
                setattr(entry, what, value)
    return ParamTable(owner=owner, learnable=learnable, learnable_of=learnable_of), problems


Report = Callable[[str, LayerIR, int, str, str | None], None]


def _batchnorm_params(
    layer: LayerIR, params: list[ParamDecl], n_blobs: int, report: Report,
) -> list[ParamDecl]:
    out = list(params)
    for i in range(n_blobs):
        if i == len(out):
            out.append(ParamDecl(lr_mult=0.0))
        elif i < len(params) and (params[i].lr_mult is None or params[i].lr_mult != 0):
            got = 1.0 if params[i].lr_mult is None else params[i].lr_mult
            report(
                "C2T310", layer, i,
                f"layer '{layer.name}' (BatchNorm): cannot configure batch normalization "
                f"statistics as layer parameters: param {i} has lr_mult {got:g}",
                "give BatchNorm's params lr_mult: 0 (or leave `param` out)",
            )
            out[i] = ParamDecl(params[i].name, 0.0, params[i].decay_mult, params[i].share_mode)
    return out


def _check_share(
    layer: LayerIR,
    index: int,
    spec: ParamDecl,
    owner_layer: str,
    owner_index: int,
    owner_shape: tuple[int | None, ...] | None,
    shape: tuple[int | None, ...] | None,
    report: Report,
) -> bool:
    """Whether sharing blob ``index`` of ``layer`` is refused (and reported)."""
    if owner_shape is None or shape is None:
        return False
    what = (
        f"layer '{layer.name}': cannot share param '{spec.name}' (blob {index}) owned by "
        f"layer '{owner_layer}' (blob {owner_index})"
    )
    if spec.share_mode == "PERMISSIVE":
        a, b = _count(owner_shape), _count(shape)
        if a is not None and b is not None and a != b:
            report(
                "C2T329", layer, index,
                f"{what}: count mismatch: owner shape {_shape_text(owner_shape)}, sharing "
                f"shape {_shape_text(shape)}", None,
            )
            return True
    elif _differ(owner_shape, shape):
        report(
            "C2T329", layer, index,
            f"{what}: shape mismatch: owner shape {_shape_text(owner_shape)}, sharing shape "
            f"{_shape_text(shape)}",
            "use share_mode: PERMISSIVE to share blobs of equal count",
        )
        return True
    return False
