"""``caffe2torch device_query``: Caffe's ``caffe device_query``."""

from __future__ import annotations

import argparse
import os
import platform
import sys

from caffe2torch.cli import common

DESCRIPTION = """\
Show the devices training can use, as Caffe's `caffe device_query` does: the torch
version and each CUDA GPU's name, memory and compute capability, or the CPU when there is
no GPU.

Exit codes: 0 shown; 1 the asked GPU does not exist; 2 usage error (-gpu not an id)."""

EXAMPLES = """\
examples:
  caffe2torch device_query
  caffe2torch device_query -gpu 0"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", metavar="ID",
                   help="only this GPU, a comma list (0,1) or 'all' (default: all)")


def _error(message: str) -> None:
    print(f"caffe2torch device_query: error: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import torch

    ids: list[int] | None = None
    if args.gpu not in (None, "all"):
        try:
            ids = [int(x) for x in args.gpu.split(",")]
        except ValueError:
            _error(f"-gpu {args.gpu!r}: expected a GPU id, a comma list or 'all'")
            return common.USAGE
    print(f"torch {torch.__version__}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        print("CUDA: not available; training runs on the CPU")
        print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"{torch.get_num_threads()} torch threads")
        if ids:
            _error(f"GPU {ids[0]} does not exist (no CUDA device is visible)")
            return common.FAILED
        return common.OK
    for i in ids if ids is not None else range(count):
        if not 0 <= i < count:
            _error(f"GPU {i} does not exist ({count} visible)")
            return common.FAILED
        prop = torch.cuda.get_device_properties(i)
        print(f"Device id:                     {i}")
        print(f"Name:                          {prop.name}")
        print(f"Major revision number:         {prop.major}")
        print(f"Minor revision number:         {prop.minor}")
        print(f"Total global memory:           {prop.total_memory}")
        print(f"Number of multiprocessors:     {prop.multi_processor_count}")
    return common.OK
