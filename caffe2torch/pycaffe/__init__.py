"""pycaffe on PyTorch: Caffe's Python interface over caffe2torch's nets and solvers.

    import caffe2torch.pycaffe as caffe        # the one-line change
    net = caffe.Net("deploy.prototxt", "weights.caffemodel", caffe.TEST)
    net.blobs["data"].data[...] = x
    out = net.forward()

An unchanged script that says ``import caffe`` runs with ``caffe2torch run script.py``
(see caffe2torch.pycaffe.alias). ``caffe.draw`` and ``caffe.coord_map`` are imported on
demand, as in pycaffe.
"""

from caffe2torch.pycaffe import (
    _caffe,
    io,
    proto,
)
from caffe2torch.pycaffe.blob import Blob, BlobVec
from caffe2torch.pycaffe.classifier import Classifier
from caffe2torch.pycaffe.detector import Detector
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
    TEST,
    TRAIN,
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
from caffe2torch.pycaffe.net_spec import NetSpec, layers, params, to_proto
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

__all__ = [
    "NCCL",
    "TEST",
    "TRAIN",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "Blob",
    "BlobVec",
    "Classifier",
    "Detector",
    "Layer",
    "NesterovSolver",
    "Net",
    "NetSpec",
    "RMSPropSolver",
    "SGDSolver",
    "Solver",
    "Timer",
    "__version__",
    "_caffe",
    "get_solver",
    "has_nccl",
    "init_log",
    "io",
    "layer_type_list",
    "layers",
    "log",
    "params",
    "proto",
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
    "to_proto",
]
