"""The net states worth checking and which layers each one builds (netstate does the
filtering; this only picks the states)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from caffe2torch.ir.netstate import NetState, declared_phases, layer_included, rule_matches


@dataclass
class StateView:
    state: NetState
    indices: tuple[int, ...]  # layers built in this state, in net order
    produced: dict[str, int] = field(default_factory=dict)  # blob -> last writer (graph rules)

    @property
    def label(self) -> str:
        s = self.state
        extra = f" with stage {', '.join(repr(x) for x in s.stages)}" if s.stages else ""
        return s.phase + extra


def _included(layer, state: NetState) -> bool:
    if layer.include and layer.exclude:  # Caffe refuses it (C2T203); judge by include
        return any(rule_matches(r, state) for r in layer.include)
    return layer_included(layer, state)


def net_states(layers) -> list[StateView]:
    """Each declared phase with no stage, plus each (phase, stage) that an include rule
    asks for, so that stage-only layers are checked too."""
    stages = sorted({s for lp in layers for r in lp.include for s in r.stage})
    # A state with no data or input layer is one nobody builds (a TEST net whose data comes
    # with a stage) -- unless the file has no source layer at all (a fragment).
    sourced = any(not lp.bottom for lp in layers)
    out: list[StateView] = []
    for phase in declared_phases(layers):
        combos: list[tuple[str, ...]] = [(), *((s,) for s in stages)]
        if len(stages) <= 12:  # stage pairs too (lrcn: 'test-on-val' + 'factored')
            combos += list(itertools.combinations(stages, 2))
        for st in combos:
            state = NetState(phase, 0, st)
            idx = tuple(i for i, lp in enumerate(layers) if _included(lp, state))
            if sourced and not any(not layers[i].bottom for i in idx):
                continue
            if st and any(v.indices == idx and v.state.phase == phase for v in out):
                continue
            out.append(StateView(state, idx))
    return out


def unavoidable(found: Iterable[str], states: list[StateView]) -> bool:
    """In a net with stages, a finding counts only when every checked state of some phase
    has it (``found``: the labels of the states that have it): stage-only layers are meant
    for stage combinations we do not guess."""
    have = set(found)
    for phase in {sv.state.phase for sv in states}:
        labels = [sv.label for sv in states if sv.state.phase == phase]
        if labels and all(lb in have for lb in labels):
            return True
    return False


def phases_text(phases) -> str:
    """"TRAIN and TEST"; a stage is named only when the plain phase is not in the list."""
    plain = [p for p in dict.fromkeys(phases) if " " not in p]
    staged = [p for p in dict.fromkeys(phases) if " " in p and p.split(" ")[0] not in plain]
    shown = plain + staged
    if len(shown) > 3:
        shown = [*shown[:3], f"{len(shown) - 3} more states"]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
