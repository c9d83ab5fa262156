"""Caffe's NetStateRule: which layers exist in a given phase / level / stages.

The one implementation of Net::FilterNet and Net::StateMeetsRule (src/caffe/net.cpp): the
builder, the linter, ``info`` and the drawer all call it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

PHASES = ("TRAIN", "TEST")


@dataclass(frozen=True)
class NetState:
    """The state a net is built for: Caffe's NetState message as a plain value."""

    phase: str = "TEST"
    level: int = 0
    stages: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def of(
        cls, phase: str | int = "TEST", level: int = 0, stages: Iterable[str] = ()
    ) -> NetState:
        return cls(phase_name(phase), int(level), tuple(stages))

    @classmethod
    def from_proto(cls, msg: Any, default_phase: str | int = "TEST") -> NetState:
        """From a caffe_pb2.NetState; its phase counts only when set."""
        phase = msg.phase if msg.HasField("phase") else default_phase
        return cls(phase_name(phase), msg.level, tuple(msg.stage))


def phase_name(phase: str | int) -> str:
    """'TRAIN'/'TEST' from the enum number (0/1) or any casing of the name."""
    if isinstance(phase, int):
        if phase not in (0, 1):
            raise ValueError(f"phase must be 0 (TRAIN) or 1 (TEST), not {phase}")
        return PHASES[phase]
    name = str(phase).upper()
    if name not in PHASES:
        raise ValueError(f"phase must be TRAIN or TEST, not {phase!r}")
    return name


def rule_matches(rule: Any, state: NetState) -> bool:
    """Net::StateMeetsRule: every condition the rule sets must hold for ``state``."""
    if rule.HasField("phase") and phase_name(rule.phase) != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stages for stage in rule.stage):
        return False
    return not any(stage in state.stages for stage in rule.not_stage)


def has_include_and_exclude(layer: Any) -> bool:
    """Caffe refuses a layer with both include and exclude rules."""
    return len(layer.include) > 0 and len(layer.exclude) > 0


def layer_included(layer: Any, state: NetState) -> bool:
    """Net::FilterNet for one layer: with include rules, any match keeps it; otherwise it is
    kept unless an exclude rule matches. (Callers check has_include_and_exclude first.)"""
    if layer.include:
        return any(rule_matches(rule, state) for rule in layer.include)
    return not any(rule_matches(rule, state) for rule in layer.exclude)


def filter_layers(layers: Sequence[Any], state: NetState) -> list[int]:
    """Indices of the layers that exist in ``state``, in net order."""
    return [i for i, layer in enumerate(layers) if layer_included(layer, state)]


def declared_phases(layers: Sequence[Any]) -> list[str]:
    """The phases worth building a net in: both when any rule names a phase (a train_test
    net), else TEST alone (a deploy net, which has no rules)."""
    names_a_phase = any(
        rule.HasField("phase")
        for layer in layers
        for rule in list(layer.include) + list(layer.exclude)
    )
    return list(PHASES) if names_a_phase else ["TEST"]
