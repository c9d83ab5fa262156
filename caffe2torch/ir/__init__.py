"""Protobuf-free view of a net: phase filtering, blob DAG, parameter sharing.

Nothing here imports torch: the linter, the drawer and the builder all use it.
"""

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
