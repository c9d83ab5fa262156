"""``caffe.pycaffe``: where BVLC's package defines Net and the solvers (some scripts import
them from here)."""

from caffe2torch.pycaffe.nccl import NCCL
from caffe2torch.pycaffe.net import Net
from caffe2torch.pycaffe.solver import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
)

__all__ = [
    "NCCL",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "NesterovSolver",
    "Net",
    "RMSPropSolver",
    "SGDSolver",
]
