"""Graph warnings, per phase: layers in no phase, tops nobody reads, duplicate layer names.
(What Caffe refuses -- unknown bottoms, tops produced twice, include with exclude -- is
ir's, rendered by rules_init.)"""

from __future__ import annotations

from caffe2torch.ir.netstate import PHASES, NetState, has_include_and_exclude, rule_matches
from caffe2torch.layers.typeinfo import find_type_info
from caffe2torch.lint.context import Context
from caffe2torch.lint.parse import NetView
from caffe2torch.lint.states import StateView, phases_text, unavoidable

# Layer types whose tops are meant to be read by people, not by other layers.
_SINK_TYPES = frozenset({"Accuracy", "Silence", "HDF5Output", "Python"})


def _line(view: NetView, i: int) -> str:
    lp = view.positions[i] if i < len(view.positions) else None
    return f" (line {lp.start_line})" if lp is not None else ""


def _field_pos(view: NetView, i: int, name: str, j: int):
    lp = view.positions[i] if i < len(view.positions) else None
    if lp is None:
        return None, None
    spots = lp.fields.get(name, [])
    return spots[j] if j < len(spots) else lp.start


def check_graph(ctx: Context, view: NetView, states: list[StateView],
                broken: set[int]) -> None:
    """``broken``: the layers with an unknown bottom (rules_init reported them)."""
    layers = view.layers
    _rules(ctx, view)
    dup_name: dict[int, tuple[int, list[str]]] = {}
    consumed_any: set[str] = set()
    outputs: dict[tuple[int, str], list[str]] = {}
    for sv in states:
        phase = sv.label
        produced: dict[str, int] = {}
        names: dict[str, int] = {}
        alive: dict[str, int] = {}  # blob -> producer, not read since
        for i in sv.indices:
            lp = layers[i]
            spec = find_type_info(lp.type)
            if lp.name in names and lp.name and spec is not None and spec.blobs:
                dup_name.setdefault(i, (names[lp.name], []))[1].append(phase)
            names.setdefault(lp.name, i)
            for b in lp.bottom:
                if b in produced:
                    consumed_any.add(b)
                    alive.pop(b, None)
            for t in lp.top:
                produced[t] = i
                alive[t] = i
        for blob, i in alive.items():
            outputs.setdefault((i, blob), []).append(phase)
    outputs = {k: v for k, v in outputs.items() if unavoidable(v, states)}
    for i, (first, phases) in dup_name.items():
        lp = layers[i]
        at = view.positions[first]
        ctx.report(
            "C2T206", f"layer name '{lp.name}' is used twice in {phases_text(phases)} (first "
            f"at line {at.start_line if at is not None else '?'})"
            ": caffemodel weights go to the first one only", *view.pos(i), layer=lp.name,
            phases=tuple(phases), help="give each layer of a phase its own name")
    left = {k: v for k, v in outputs.items() if k[0] not in broken}
    _unused(ctx, view, states, left, consumed_any)
    _unread_data_tops(ctx, view, states, left, consumed_any)


def _rules(ctx: Context, view: NetView) -> None:
    for i, lp in enumerate(view.layers):
        if has_include_and_exclude(lp):
            continue  # Caffe refuses it (C2T203, from ir)
        if not any(_may_include(lp, ph) for ph in PHASES):
            ctx.report("C2T204", f"layer '{lp.name}' is built in no phase: its include/exclude "
                       "rules leave out both TRAIN and TEST", *view.pos(i), layer=lp.name,
                       help="fix or delete its include/exclude rules")


def _satisfiable(rule) -> bool:
    if rule.HasField("min_level") and rule.HasField("max_level") \
            and rule.min_level > rule.max_level:
        return False
    return not set(rule.stage) & set(rule.not_stage)


def _may_include(lp, phase: str) -> bool:
    """Whether some level/stages of ``phase`` build the layer."""
    if lp.include:
        return any(_satisfiable(r) and rule_matches_phase(r, phase) for r in lp.include)
    for r in lp.exclude:
        unconditional = not (r.HasField("min_level") or r.HasField("max_level") or r.stage
                             or r.not_stage)
        if unconditional and rule_matches(r, NetState(phase)):
            return False
    return True


def rule_matches_phase(rule, phase: str) -> bool:
    return not rule.HasField("phase") or rule_matches(_phase_only(rule), NetState(phase))


def _phase_only(rule):
    out = type(rule)()
    out.phase = rule.phase
    return out


def _is_loss(lp) -> bool:
    spec = find_type_info(lp.type)
    return bool((spec is not None and spec.loss) or lp.type.endswith("Loss")
                or any(w != 0 for w in lp.loss_weight))


def _unused(ctx, view, states, outputs, consumed_any) -> None:
    """Tops left unread in a net that trains: they become extra net outputs."""
    layers = view.layers
    loss_states = {sv.label for sv in states if any(_is_loss(layers[i]) for i in sv.indices)}
    for (i, blob), phases in outputs.items():
        lp = layers[i]
        spec = find_type_info(lp.type)
        if blob in consumed_any or _is_loss(lp) or lp.type in _SINK_TYPES:
            continue
        if any(t in consumed_any for t in lp.top):
            continue  # an auxiliary top (a pooling mask, a monitored value) beside a used one
        if spec is None or spec.data or not spec.bottoms.accepts(len(lp.bottom)) \
                or spec.bottoms.high == 0:
            continue
        if not all(p in loss_states for p in phases):
            continue
        j = list(lp.top).index(blob)
        ctx.report(
            "C2T205", f"top '{blob}' of layer '{lp.name}' is read by no layer in "
            f"{phases_text(phases)}: it becomes an extra net output",
            *_field_pos(view, i, "top", j),
            layer=lp.name, phases=tuple(phases),
            help="feed it to the layer that should read it (a misspelt bottom?), or delete it")


def _unread_data_tops(ctx, view, states, outputs, consumed_any) -> None:
    """A data layer's top that nothing reads in a net that trains (the second pair label
    ``sim_p`` of a Siamese net): Caffe makes it a net output, so every display logs one
    line per element of it, and our metrics CSV one series per element."""
    layers = view.layers
    loss_states = {sv.label for sv in states if any(_is_loss(layers[i]) for i in sv.indices)}
    for (i, blob), phases in outputs.items():
        lp = layers[i]
        spec = find_type_info(lp.type)
        if spec is None or not spec.data or blob in consumed_any:
            continue
        if not all(p in loss_states for p in phases):
            continue
        j = list(lp.top).index(blob)
        ctx.report(
            "C2T207", f"top '{blob}' of data layer '{lp.name}' is read by no layer in "
            f"{phases_text(phases)}: it becomes a net output, so training logs one 'net "
            f"output' line per element of it at every display (and the metrics CSV and "
            "`caffe2torch plot` get one series per element)",
            *_field_pos(view, i, "top", j), layer=lp.name, phases=tuple(phases),
            help=f'add `layer {{ name: "silence_{blob}" type: "Silence" bottom: "{blob}" }}` '
            "to consume it")
