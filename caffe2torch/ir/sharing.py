"""Which layers share their param blobs: as declared (``param { name }``), untied, tied by
an explicit map, or tied automatically for structurally identical towers.

Every mode ends as ``param`` declarations handed to :func:`caffe2torch.ir.params.resolve_params`,
so the one implementation of Caffe's AppendParam rules decides ownership and multipliers.

``auto`` ties layer B to an earlier layer A when
* both have param blobs of equal shapes, the same type and the same settings (the layer
  message without name, bottom, top, param and include/exclude rules),
* their names differ only by a short affix (``conv1``/``conv1_p``, ``conv1_a``/``conv1_b``,
  ``p_conv1``/``conv1``; a pure numbering such as ``ip1``/``ip2`` does not count), and
* their bottoms correspond: both come from data layers (at the same top index), or from
  two different tops of one layer (a Slice of a pair), or from two layers that themselves
  correspond by the same rules (parameter-free layers such as ReLU and Pooling included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from caffe2torch.errors import BuildError
from caffe2torch.ir.graph import BlobRef, NetIR, ParamDecl

Shape = tuple[int, ...]
ShareOption = str | Mapping[str, str] | None


@dataclass(frozen=True)
class Tie:
    """Layer ``layer`` uses the param blobs of ``owner`` (``blobs`` of them)."""

    layer: str
    owner: str
    blobs: int
    how: str  # "declared", "auto" or "explicit"
    names: tuple[str, ...] = ()  # the param names tying them


@dataclass
class SharingPlan:
    """The ``param`` declarations to build with, and what they tie."""

    mode: str
    decls: dict[int, tuple[ParamDecl, ...]] = field(default_factory=dict)
    ties: list[Tie] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # candidate ties left out, and why

    def __str__(self) -> str:
        lines = [f"param sharing ({self.mode}): {len(self.ties)} tie(s)"]
        for t in self.ties:
            lines.append(f"  {t.layer} -> {t.owner} ({t.blobs} blob(s), {t.how})")
        for s in self.skipped:
            lines.append(f"  skipped: {s}")
        return "\n".join(lines)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _affix(a: str, b: str) -> tuple[str, str] | None:
    """The parts by which ``a`` and ``b`` differ once their common prefix and suffix are
    removed, when that is a short affix (not a pure numbering); else None."""
    head = _common_prefix(a, b)
    ra, rb = a[head:], b[head:]
    tail = _common_prefix(ra[::-1], rb[::-1])
    da, db = ra[: len(ra) - tail], rb[: len(rb) - tail]
    if da == db or len(da) > 8 or len(db) > 8:
        return None
    if all(part.isdigit() or not part for part in (da, db)):
        return None  # ip1/ip2, conv1/conv11: numbering, not towers
    return da, db


def _settings_key(proto: Any) -> bytes:
    msg = type(proto)()
    msg.CopyFrom(proto)
    for name in ("name", "bottom", "top", "param", "include", "exclude", "phase", "blobs"):
        msg.ClearField(name)
    return msg.SerializeToString(deterministic=True)


class _Towers:
    def __init__(self, net: NetIR) -> None:
        self.net = net
        self.keys = [_settings_key(ly.proto) for ly in net.layers]
        self.memo: dict[tuple[int, int], bool] = {}

    def blobs_correspond(self, a: BlobRef, b: BlobRef) -> bool:
        if a == b:
            return False  # one input for both: nothing tower-like
        pa, ka = self.net.producer[a]
        pb, kb = self.net.producer[b]
        la, lb = self.net.layers[pa], self.net.layers[pb]
        if pa == pb:
            return True  # two tops of one layer (Slice of a pair)
        if la.is_data and lb.is_data:
            return ka == kb
        return ka == kb and self.layers_correspond(pa, pb)

    def layers_correspond(self, pa: int, pb: int) -> bool:
        key = (min(pa, pb), max(pa, pb))
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = False  # guards against cycles through the recursion
        la, lb = self.net.layers[pa], self.net.layers[pb]
        ok = (
            pa != pb
            and la.type == lb.type
            and not la.is_data
            and self.keys[pa] == self.keys[pb]
            and len(la.bottoms) == len(lb.bottoms)
            and _affix(la.name, lb.name) is not None
            and all(self.blobs_correspond(x, y) for x, y in zip(la.bottoms, lb.bottoms))
        )
        self.memo[key] = ok
        return ok


def _find(parent: dict[int, int], x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def auto_pairs(net: NetIR, blob_shapes: Mapping[int, Sequence[Shape]]) -> dict[int, int]:
    """{sharer position: owner position} for the structurally identical towers of ``net``."""
    towers = _Towers(net)
    groups: dict[tuple[str, bytes, tuple[Shape, ...]], list[int]] = {}
    for pos, layer in enumerate(net.layers):
        shapes = tuple(tuple(s) for s in blob_shapes.get(pos, ()))
        if shapes and not layer.is_data:
            groups.setdefault((layer.type, towers.keys[pos], shapes), []).append(pos)
    parent: dict[int, int] = {}
    for members in groups.values():
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if towers.layers_correspond(a, b):
                    parent.setdefault(a, a)
                    parent.setdefault(b, b)
                    ra, rb = _find(parent, a), _find(parent, b)
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)  # the earliest layer owns
    return {p: _find(parent, p) for p in parent if _find(parent, p) != p}


def _declared_ties(net: NetIR, how: str = "declared") -> list[Tie]:
    first: dict[str, str] = {}
    ties: dict[tuple[str, str], list[str]] = {}
    for layer in net.layers:
        for p in layer.params:
            if not p.name:
                continue
            owner = first.setdefault(p.name, layer.name)
            if owner != layer.name:
                ties.setdefault((layer.name, owner), []).append(p.name)
    return [Tie(ly, ow, len(names), how, tuple(names)) for (ly, ow), names in ties.items()]


def plan_sharing(
    net: NetIR, blob_shapes: Mapping[int, Sequence[Shape]], share: ShareOption = "declared"
) -> SharingPlan:
    """The sharing to build ``net`` with.

    ``share``: ``"declared"`` (Caffe's behaviour), ``None`` (untie every declared share),
    ``"auto"`` (declared plus structurally identical towers), or a map
    ``{layer: owner layer}`` (declared plus these ties).
    """
    if share is None:
        decls = {
            pos: tuple(ParamDecl("", p.lr_mult, p.decay_mult, p.share_mode) for p in ly.params)
            for pos, ly in enumerate(net.layers)
            if any(p.name for p in ly.params)
        }
        untied = _declared_ties(net)
        plan = SharingPlan("none", decls)
        plan.skipped = [f"{t.layer} -> {t.owner}: declared, untied" for t in untied]
        return plan
    if isinstance(share, str):
        if share not in ("declared", "auto"):
            raise BuildError(
                f"share must be 'declared', 'auto', None or a {{layer: owner}} map, not {share!r}"
            )
        plan = SharingPlan(share, {}, _declared_ties(net))
        if share == "auto":
            for sharer_pos, owner_pos in sorted(auto_pairs(net, blob_shapes).items()):
                _tie(net, plan, blob_shapes, sharer_pos, owner_pos, "auto")
        return plan
    plan = SharingPlan("explicit", {}, _declared_ties(net))
    index = {ly.name: pos for pos, ly in enumerate(net.layers)}
    for layer, owner in share.items():
        for n in (layer, owner):
            if n not in index:
                raise BuildError(
                    f"share: no layer '{n}' in the {net.state.phase} phase of the net",
                    hint="name layers as the prototxt does",
                )
        _tie(net, plan, blob_shapes, index[layer], index[owner], "explicit")
    return plan


def _tie(
    net: NetIR,
    plan: SharingPlan,
    blob_shapes: Mapping[int, Sequence[Shape]],
    sharer: int,
    owner: int,
    how: str,
) -> None:
    """Make every blob of layer ``sharer`` share the blob of the same index of ``owner``."""
    ls, lo = net.layers[sharer], net.layers[owner]
    shapes_s = [tuple(s) for s in blob_shapes.get(sharer, ())]
    shapes_o = [tuple(s) for s in blob_shapes.get(owner, ())]

    def refuse(why: str) -> None:
        if how == "explicit":
            raise BuildError(f"share: cannot tie layer '{ls.name}' to '{lo.name}': {why}")
        plan.skipped.append(f"{ls.name} -> {lo.name}: {why}")

    if sharer == owner:
        return refuse("a layer cannot share with itself")
    if not shapes_s or shapes_s != shapes_o:
        return refuse(f"param blob shapes differ: {shapes_s} vs {shapes_o}")
    decl_s = list(plan.decls.get(sharer, ls.params))
    decl_o = list(plan.decls.get(owner, lo.params))
    decl_s += [ParamDecl()] * (len(shapes_s) - len(decl_s))
    decl_o += [ParamDecl()] * (len(shapes_o) - len(decl_o))
    for i in range(len(shapes_s)):
        a, b = decl_s[i], decl_o[i]
        if a.name and a.name != b.name:
            return refuse(f"blob {i} is already shared as '{a.name}'")
        for what in ("lr_mult", "decay_mult"):
            va, vb = getattr(a, what), getattr(b, what)
            if va is not None and vb is not None and va != vb:
                return refuse(f"blob {i} has {what} {va:g} here and {vb:g} in the owner")
    names = []
    for i in range(len(shapes_s)):
        name = decl_o[i].name or f"{lo.name}#{i}"
        names.append(name)
        decl_o[i] = ParamDecl(name, decl_o[i].lr_mult, decl_o[i].decay_mult, decl_o[i].share_mode)
        decl_s[i] = ParamDecl(name, decl_s[i].lr_mult, decl_s[i].decay_mult, decl_s[i].share_mode)
    plan.decls[owner] = tuple(decl_o)
    plan.decls[sharer] = tuple(decl_s)
    plan.ties.append(Tie(ls.name, lo.name, len(names), how, tuple(names)))
    return None
