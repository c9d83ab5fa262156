"""``caffe._caffe``: the names of pycaffe's compiled module (python/caffe/_caffe.cpp),
which some scripts reach directly, e.g. ``type(net.params[k]) is caffe._caffe.BlobVec``
to tell a layer's param vector apart, or ``from caffe._caffe import RawBlobVec`` in a
Python layer. Each name that ``caffe`` also has is the same object as ``caffe.<name>``.
"""

from caffe2torch.layers.bvlc.inputs import Phase
from caffe2torch.pycaffe.blob import Blob, BlobVec
from caffe2torch.pycaffe.layer import Layer
from caffe2torch.pycaffe.misc import (
    Timer,
    __version__,
    init_log,
    layer_type_list,
    log,
    set_logging_disabled,
)
from caffe2torch.pycaffe.mode import (
    has_nccl,
    set_device,
    set_mode_cpu,
    set_mode_gpu,
    set_multiprocess,
    set_random_seed,
    set_solver_count,
    set_solver_rank,
    solver_count,
    solver_rank,
)
from caffe2torch.pycaffe.nccl import NCCL
from caffe2torch.pycaffe.net import Net
from caffe2torch.pycaffe.solver import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    Solver,
    get_solver,
)

# The C++ vectors the module wraps (a layer's bottom and top, the net's names and
# flags) are plain Python lists here; scripts import them by name or test isinstance.
RawBlobVec = list
LayerVec = list
StringVec = list
IntVec = list
DtypeVec = list
BoolVec = list

__all__ = [
    "NCCL",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "Blob",
    "BlobVec",
    "BoolVec",
    "DtypeVec",
    "IntVec",
    "Layer",
    "LayerVec",
    "NesterovSolver",
    "Net",
    "Phase",
    "RMSPropSolver",
    "RawBlobVec",
    "SGDSolver",
    "Solver",
    "StringVec",
    "Timer",
    "__version__",
    "get_solver",
    "has_nccl",
    "init_log",
    "layer_type_list",
    "log",
    "set_device",
    "set_logging_disabled",
    "set_mode_cpu",
    "set_mode_gpu",
    "set_multiprocess",
    "set_random_seed",
    "set_solver_count",
    "set_solver_rank",
    "solver_count",
    "solver_rank",
]
