"""``caffe.NCCL``: pycaffe's multi-GPU gradient exchange (python/train.py makes one per GPU
process). caffe2torch trains on several GPUs through torch.distributed instead, so the
class is here only to refuse with a message saying so, where a pycaffe built without NCCL
ends in an AttributeError (``new_uid`` is defined only under USE_NCCL)."""

from __future__ import annotations

from typing import Any, NoReturn

from caffe2torch.errors import CaffeError


def _refuse(what: str) -> NoReturn:
    raise CaffeError(f"caffe.NCCL.{what}: pycaffe's NCCL multi-GPU training is not part of "
                     "caffe2torch (caffe.has_nccl() is False)",
                     hint="train on several GPUs with `caffe2torch train -solver SOLVER "
                     "-gpu all` (torch.distributed), or on one with caffe.SGDSolver(...)"
                     ".solve()")


class NCCL:
    def __init__(self, solver: Any, uid: str) -> None:
        _refuse("__init__")

    @staticmethod
    def new_uid() -> str:
        _refuse("new_uid")

    def bcast(self) -> None:
        _refuse("bcast")
