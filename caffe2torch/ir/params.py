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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from caffe2torch.errors import BuildError
from caffe2torch.ir.graph import NetIR, ParamDecl

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


def _count(shape: Sequence[int]) -> int:
    return math.prod(int(d) for d in shape)


def _shape_text(shape: Sequence[int]) -> str:
    return " ".join(str(d) for d in shape) + f" ({_count(shape)})"


def resolve_params(
    net: NetIR,
    blob_shapes: Mapping[int, Sequence[Shape]],
    *,
    decls: Mapping[int, Sequence[ParamDecl]] | None = None,
) -> ParamTable:
    """The parameter table of ``net`` whose layers have param blobs of ``blob_shapes``
    ({layer position: [shape, ...]}, caffemodel order). ``decls`` replaces the ``param``
    entries of the layers it names by position (used to add or remove sharing)."""
    owner: dict[Slot, Slot] = {}
    learnable: list[Learnable] = []
    learnable_of: dict[Slot, int] = {}
    by_name: dict[str, Slot] = {}  # param_names_index_
    has_lr: list[bool] = []
    has_decay: list[bool] = []
    shapes_of: dict[Slot, Shape] = {}
    for pos, layer in enumerate(net.layers):
        shapes = list(blob_shapes.get(pos, ()))
        params = list(decls[pos]) if decls and pos in decls else list(layer.params)
        if len(params) > len(shapes):
            raise BuildError(
                f"layer '{layer.name}' ({layer.type}): too many params specified: "
                f"{len(params)} param entries for {len(shapes)} param blob(s)",
                hint="remove the extra `param { }` blocks (e.g. the bias one when "
                "bias_term: false)",
            )
        if layer.type == "BatchNorm":
            params = _batchnorm_params(layer.name, params, len(shapes))
        for i, shape in enumerate(shapes):
            slot = (pos, i)
            shapes_of[slot] = tuple(shape)
            spec = params[i] if i < len(params) else ParamDecl()
            if not spec.name or spec.name not in by_name:
                owner[slot] = slot
                if spec.name:
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
            _check_share(
                layer.name, i, spec, net.layers[own[0]].name, own[1], shapes_of[own], tuple(shape)
            )
            owner[slot] = own
            lid = learnable_of[own]
            learnable_of[slot] = lid
            entry = learnable[lid]
            entry.sharers.append(slot)
            if spec.lr_mult is not None:
                if has_lr[lid] and spec.lr_mult != entry.lr_mult:
                    raise BuildError(
                        f"layer '{layer.name}': shared param '{spec.name}' has mismatched "
                        f"lr_mult ({spec.lr_mult} here, {entry.lr_mult} in layer "
                        f"'{entry.layer}')",
                    )
                has_lr[lid] = True
                entry.lr_mult = spec.lr_mult
            if spec.decay_mult is not None:
                if has_decay[lid] and spec.decay_mult != entry.decay_mult:
                    raise BuildError(
                        f"layer '{layer.name}': shared param '{spec.name}' has mismatched "
                        f"decay_mult ({spec.decay_mult} here, {entry.decay_mult} in layer "
                        f"'{entry.layer}')",
                    )
                has_decay[lid] = True
                entry.decay_mult = spec.decay_mult
    return ParamTable(owner=owner, learnable=learnable, learnable_of=learnable_of)


def _batchnorm_params(name: str, params: list[ParamDecl], n_blobs: int) -> list[ParamDecl]:
    out = list(params)
    for i in range(n_blobs):
        if i == len(out):
            out.append(ParamDecl(lr_mult=0.0))
        elif i < len(params) and (params[i].lr_mult is None or params[i].lr_mult != 0):
            got = 1.0 if params[i].lr_mult is None else params[i].lr_mult
            raise BuildError(
                f"layer '{name}' (BatchNorm): cannot configure batch normalization statistics "
                f"as layer parameters: param {i} has lr_mult {got:g}",
                hint="give BatchNorm's params lr_mult: 0 (or leave `param` out)",
            )
    return out


def _check_share(
    layer: str,
    index: int,
    spec: ParamDecl,
    owner_layer: str,
    owner_index: int,
    owner_shape: Shape,
    shape: Shape,
) -> None:
    what = (
        f"layer '{layer}': cannot share param '{spec.name}' (blob {index}) owned by layer "
        f"'{owner_layer}' (blob {owner_index})"
    )
    if spec.share_mode == "PERMISSIVE":
        if _count(owner_shape) != _count(shape):
            raise BuildError(
                f"{what}: count mismatch: owner shape {_shape_text(owner_shape)}, sharing "
                f"shape {_shape_text(shape)}"
            )
    elif tuple(owner_shape) != tuple(shape):
        raise BuildError(
            f"{what}: shape mismatch: owner shape {_shape_text(owner_shape)}, sharing shape "
            f"{_shape_text(shape)}",
            hint="use share_mode: PERMISSIVE to share blobs of equal count",
        )
