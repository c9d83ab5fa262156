"""caffe2torch: Caffe nets, weights and solvers in PyTorch with Caffe's exact numerics."""

from __future__ import annotations

# first: chooses OpenMP's wait policy before torch loads libgomp (see omp_wait)
from caffe2torch import omp_wait as _omp_wait  # noqa: F401
from caffe2torch.errors import (
    BuildError,
    CaffeError,
    DataError,
    ParseError,
    SolverError,
    UpgradeError,
    WeightsError,
)
from caffe2torch.export.onnx import export_onnx as export_onnx
from caffe2torch.graph import CaffeNet, build_net, load_net
from caffe2torch.io import read_net, read_net_with_positions, read_solver, upgrade_text
from caffe2torch.io.binary import read_caffemodel
from caffe2torch.ir import NetState
from caffe2torch.layers.plugins import layer_fields, register_layer
from caffe2torch.lint import lint as lint
from caffe2torch.solver.solver import Solver, get_solver

__version__ = "0.1.0"


__all__ = [
    "BuildError",
    "CaffeError",
    "CaffeNet",
    "DataError",
    "NetState",
    "ParseError",
    "Solver",
    "SolverError",
    "UpgradeError",
    "WeightsError",
    "build_net",
    "export_onnx",
    "get_solver",
    "layer_fields",
    "lint",
    "load_net",
    "read_caffemodel",
    "read_net",
    "read_net_with_positions",
    "read_solver",
    "register_layer",
    "upgrade_text",
]
