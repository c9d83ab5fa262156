"""caffe2torch: Caffe nets, weights and solvers in PyTorch with Caffe's exact numerics.

The public names below are loaded on first use (PEP 562), so that ``import caffe2torch``
(and with it every ``caffe2torch.*`` module, the CLI's entry included) does not import
torch, OpenCV or ONNX until something that needs them is asked for: ``caffe2torch --help``
starts at Python's own speed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

# first: chooses OpenMP's wait policy before torch loads libgomp (see omp_wait)
from caffe2torch import omp_wait as _omp_wait  # noqa: F401

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC: dict[str, str] = {
    "BuildError": "caffe2torch.errors",
    "CaffeError": "caffe2torch.errors",
    "DataError": "caffe2torch.errors",
    "ParseError": "caffe2torch.errors",
    "SolverError": "caffe2torch.errors",
    "UpgradeError": "caffe2torch.errors",
    "WeightsError": "caffe2torch.errors",
    "CaffeNet": "caffe2torch.graph",
    "build_net": "caffe2torch.graph",
    "load_net": "caffe2torch.graph",
    "NetState": "caffe2torch.ir",
    "read_net": "caffe2torch.io",
    "read_net_with_positions": "caffe2torch.io",
    "read_solver": "caffe2torch.io",
    "read_caffemodel": "caffe2torch.io",
    "upgrade_text": "caffe2torch.io",
    "layer_fields": "caffe2torch.layers.plugins",
    "register_layer": "caffe2torch.layers.plugins",
    "lint": "caffe2torch.lint.engine",
    "Solver": "caffe2torch.solver.solver",
    "get_solver": "caffe2torch.solver.solver",
    "export_onnx": "caffe2torch.export.onnx",
}

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, eagerly
    from caffe2torch.errors import (
        BuildError,
        CaffeError,
        DataError,
        ParseError,
        SolverError,
        UpgradeError,
        WeightsError,
    )
    from caffe2torch.export.onnx import export_onnx
    from caffe2torch.graph import CaffeNet, build_net, load_net
    from caffe2torch.io import (
        read_caffemodel,
        read_net,
        read_net_with_positions,
        read_solver,
        upgrade_text,
    )
    from caffe2torch.ir import NetState
    from caffe2torch.layers.plugins import layer_fields, register_layer
    from caffe2torch.lint.engine import lint
    from caffe2torch.solver.solver import Solver, get_solver


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        # a subpackage used as an attribute (caffe2torch.io.read_net), as when the facade
        # imported everything
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'caffe2torch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


class _Facade(types.ModuleType):
    """The package module. Importing a subpackage binds its name on the package; the
    subpackage ``caffe2torch.lint`` shares its name with the public function ``lint``,
    which must stay the function (as it is when the facade imports eagerly)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _PUBLIC.get(name, "").startswith(
                f"{__name__}.{name}."):
            return  # the public name wins; the subpackage stays in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade

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
