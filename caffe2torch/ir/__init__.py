"""Protobuf-free view of a net: phase filtering, blob DAG, parameter sharing.

Nothing here imports torch: the linter, the drawer and the builder all use it. The names
load on first use (PEP 562): the linter needs the wiring and the shapes, not the sharing
plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caffe2torch.lazy import lazy_names

if TYPE_CHECKING:
    from caffe2torch.ir.graph import (
        BlobRef,
        LayerIR,
        LayerKind,
        NetIR,
        ParamDecl,
        build_ir,
        default_kind,
        wire_net,
    )
    from caffe2torch.ir.netstate import (
        NetState,
        declared_phases,
        filter_layers,
        has_include_and_exclude,
        layer_included,
    )
    from caffe2torch.ir.params import Learnable, ParamTable, resolve_params
    from caffe2torch.ir.problems import Place, Problem
    from caffe2torch.ir.sharing import SharingPlan, Tie, auto_pairs, plan_sharing

# public name -> the module that defines it
_HOME: dict[str, str] = {
    "BlobRef": "graph",
    "LayerIR": "graph",
    "LayerKind": "graph",
    "NetIR": "graph",
    "ParamDecl": "graph",
    "build_ir": "graph",
    "default_kind": "graph",
    "wire_net": "graph",
    "NetState": "netstate",
    "declared_phases": "netstate",
    "filter_layers": "netstate",
    "has_include_and_exclude": "netstate",
    "layer_included": "netstate",
    "Learnable": "params",
    "ParamTable": "params",
    "resolve_params": "params",
    "Place": "problems",
    "Problem": "problems",
    "SharingPlan": "sharing",
    "Tie": "sharing",
    "auto_pairs": "sharing",
    "plan_sharing": "sharing",
}

__all__ = [
    "BlobRef",
    "LayerIR",
    "LayerKind",
    "Learnable",
    "NetIR",
    "NetState",
    "ParamDecl",
    "ParamTable",
    "Place",
    "Problem",
    "SharingPlan",
    "Tie",
    "auto_pairs",
    "build_ir",
    "declared_phases",
    "default_kind",
    "filter_layers",
    "has_include_and_exclude",
    "layer_included",
    "plan_sharing",
    "resolve_params",
    "wire_net",
]

__getattr__ = lazy_names(
    __name__, {name: f"{__name__}.{home}" for name, home in _HOME.items()}, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
