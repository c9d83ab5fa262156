"""Caffe's solver pieces: learning-rate policies, update rules, solver-state files."""

from caffe2torch.solver.lr_policy import POLICIES, LearningRatePolicy
from caffe2torch.solver.state import SolverStateData, read_solver_state, write_solver_state
from caffe2torch.solver.updates import SOLVER_TYPES, CaffeOptimizer, UpdateConfig, make_optimizer

__all__ = [
    "POLICIES",
    "SOLVER_TYPES",
    "CaffeOptimizer",
    "LearningRatePolicy",
    "SolverStateData",
    "UpdateConfig",
    "make_optimizer",
    "read_solver_state",
    "write_solver_state",
]
