"""Graph rules, per phase: unknown bottoms, tops produced twice, include+exclude, layers in
no phase, tops nobody reads, duplicate layer names (Net::Init's AppendBottom/AppendTop)."""

from __future__ import annotations

from caffe2torch.ir.netstate import PHASES, NetState, has_include_and_exclude, rule_matches
from caffe2torch.layers.registry import find_layer_spec
from caffe2torch.lint.context import Context
from caffe2torch.lint.parse import NetView
from caffe2torch.lint.states import StateView, phases_text
from caffe2torch.suggest import close_names, did_you_mean

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


def check_graph(ctx: Context, view: NetView, states: list[StateView]) -> None:
    layers = view.layers
    _rules(ctx, view)
    unknown: dict[tuple[int, int], list[str]] = {}
    dup_top: dict[tuple[int, int], tuple[int, list[str]]] = {}
    dup_name: dict[int, tuple[int, list[str]]] = {}
    consumed_any: set[str] = set()
    outputs: dict[tuple[int, str], list[str]] = {}
    producers_any: dict[str, list[int]] = {}
    for i, lp in enumerate(layers):
        for t in lp.top:
            producers_any.setdefault(t, []).append(i)
    for sv in states:
        phase = sv.label
        produced: dict[str, int] = {}
        names: dict[str, int] = {}
        alive: dict[str, int] = {}  # blob -> producer, not read since
        for i in sv.indices:
            lp = layers[i]
            spec = find_layer_spec(lp.type)
            if lp.name in names and lp.name and spec is not None and spec.blobs:
                dup_name.setdefault(i, (names[lp.name], []))[1].append(phase)
            names.setdefault(lp.name, i)
            for j, b in enumerate(lp.bottom):
                if b not in produced:
                    unknown.setdefault((i, j), []).append(phase)
                    continue
                consumed_any.add(b)
                alive.pop(b, None)
            for j, t in enumerate(lp.top):
                in_place = j < len(lp.bottom) and lp.bottom[j] == t
                if t in produced and not in_place and len(sv.state.stages) <= 1:
                    # (stage pairs only clear findings: two stages may exclude each other)
                    dup_top.setdefault((i, j), (produced[t], []))[1].append(phase)
                produced[t] = i
                alive[t] = i
        for blob, i in alive.items():
            outputs.setdefault((i, blob), []).append(phase)
        sv.produced = dict(produced)
    unknown = {k: v for k, v in unknown.items() if _unavoidable(v, states)}
    outputs = {k: v for k, v in outputs.items() if _unavoidable(v, states)}
    for (i, j), phases in unknown.items():
        _unknown_bottom(ctx, view, states, i, j, phases, producers_any)
    for (i, j), (first, phases) in dup_top.items():
        lp = layers[i]
        t = lp.top[j]
        ctx.report(
            "C2T202", f"layer '{lp.name}' writes top '{t}', which layer '{layers[first].name}'"
            f"{_line(view, first)} already produces in {phases_text(phases)}: Caffe stops "
            "('produced by multiple sources')",
            *_field_pos(view, i, "top", j), layer=lp.name, phases=tuple(phases),
            help="rename the top; only an in-place layer (top i = bottom i) may rewrite a blob")
    for i, (first, phases) in dup_name.items():
        lp = layers[i]
        ctx.report(
            "C2T206", f"layer name '{lp.name}' is used twice in {phases_text(phases)} (first "
            f"at line {getattr(view.positions[first], 'start_line', '?')})"
            ": caffemodel weights go to the first one only", *view.pos(i), layer=lp.name,
            phases=tuple(phases), help="give each layer of a phase its own name")
    broken = {i for i, _ in unknown}
    left = {k: v for k, v in outputs.items() if k[0] not in broken}
    _unused(ctx, view, states, left, consumed_any)
    _unread_data_tops(ctx, view, states, left, consumed_any)


def _unavoidable(found: list[str], states: list[StateView]) -> bool:
    """In a net with stages, a wiring finding counts only when every checked state of some
    phase has it: stage-only layers are meant for stage combinations we do not guess."""
    for phase in {sv.state.phase for sv in states}:
        labels = [sv.label for sv in states if sv.state.phase == phase]
        if labels and all(lb in found for lb in labels):
            return True
    return False


def _unknown_bottom(ctx, view, states, i, j, phases, producers_any) -> None:
    layers = view.layers
    lp = layers[i]
    b = lp.bottom[j]
    where = phases_text(phases)
    help_ = None
    later = [p for p in producers_any.get(b, []) if p > i]
    other = [p for p in producers_any.get(b, []) if p < i]
    if later:
        p = later[0]
        help_ = (f"'{b}' is produced later, by layer '{layers[p].name}'{_line(view, p)}: "
                 "Caffe needs every bottom produced by an earlier layer; move this layer after it")
    elif other:
        p = other[0]
        help_ = (f"'{b}' is produced by layer '{layers[p].name}'{_line(view, p)}, which is not "
                 f"built in {where}: check its include/exclude rules")
    else:
        known = set()
        for sv in states:
            if sv.label in phases:
                known.update(sv.produced)
        before = [t for k in range(i) for t in layers[k].top]
        pool = [t for t in dict.fromkeys(before) if t in known] or list(known)
        help_ = did_you_mean(close_names(b, pool))
        if help_ is None:
            help_ = f"no layer of this file produces '{b}'"
    ctx.report(
        "C2T201", f"layer '{lp.name}' reads bottom '{b}', which no earlier layer produces in "
        f"{where}", *_field_pos(view, i, "bottom", j), help=help_, layer=lp.name,
        phases=tuple(phases))


def _rules(ctx: Context, view: NetView) -> None:
    for i, lp in enumerate(view.layers):
        if has_include_and_exclude(lp):
            ctx.report("C2T203", f"layer '{lp.name}' has both include and exclude rules: Caffe "
                       "refuses it ('Specify either include rules or exclude rules; not both')",
                       *_field_pos(view, i, "exclude", 0), layer=lp.name,
                       help="keep the include rules (or the exclude rules), not both")
            continue
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
    spec = find_layer_spec(lp.type)
    return bool((spec is not None and spec.loss) or lp.type.endswith("Loss")
                or any(w != 0 for w in lp.loss_weight))


def _unused(ctx, view, states, outputs, consumed_any) -> None:
    """Tops left unread in a net that trains: they become extra net outputs."""
    layers = view.layers
    loss_states = {sv.label for sv in states if any(_is_loss(layers[i]) for i in sv.indices)}
    for (i, blob), phases in outputs.items():
        lp = layers[i]
        spec = find_layer_spec(lp.type)
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
        spec = find_layer_spec(lp.type)
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
