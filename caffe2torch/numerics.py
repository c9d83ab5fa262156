"""Caffe's float: the one home for rounding to float32.

Caffe keeps every ``Dtype`` scalar (a layer's ``eps``, a solver's ``base_lr``, a loss
weight) in a C++ ``float``, so a value read as a Python float (a double) must be rounded
to the nearest float32 before it takes part in Caffe's math.

* :func:`as_f32` rounds one value and gives it back as a Python ``float``: use it where
  the value is stored or handed to torch.
* :data:`f32` is numpy's float32 scalar type: use it where Caffe does a chain of scalar
  arithmetic in float (each operation on two ``f32`` values rounds again, as C++ does).
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    f32 = np.float32

_FLOAT32 = struct.Struct("<f")


def as_f32(value: float) -> float:
    """``value`` rounded to the nearest float32 (ties to even), as a Python float.

    The C cast of a double to float; a value beyond float's range becomes +-inf, as the
    cast gives, instead of struct's OverflowError."""
    try:
        return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def __getattr__(name: str) -> Any:
    """``f32`` on first use (PEP 562): reading a prototxt rounds with ``as_f32`` alone and
    need not load numpy."""
    if name == "f32":
        import numpy as np

        globals()["f32"] = np.float32
        return np.float32
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
