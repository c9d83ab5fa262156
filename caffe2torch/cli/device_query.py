"""``caffe2torch device_query [-gpu ID]``: the devices training can use (Caffe's
``caffe device_query``): each CUDA GPU's name, memory and compute capability, or the CPU
when there is none."""

from __future__ import annotations

import argparse
import os
import platform

import torch

from caffe2torch.cli import common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("device_query", help="show the GPUs (or the CPU) training can use",
                       description=__doc__)
    p.add_argument("--gpu", metavar="ID", help="only this GPU (or 'all')")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"torch {torch.__version__}")
    if not torch.cuda.is_available():
        print("CUDA: not available; training runs on the CPU")
        print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"{torch.get_num_threads()} torch threads")
        return common.OK
    count = torch.cuda.device_count()
    ids = list(range(count))
    if args.gpu not in (None, "all"):
        try:
            ids = [int(x) for x in args.gpu.split(",")]
        except ValueError:
            print(f"caffe2torch device_query: error: -gpu {args.gpu!r}: expected ids")
            return common.USAGE
    for i in ids:
        if not 0 <= i < count:
            print(f"caffe2torch device_query: error: GPU {i} does not exist ({count} visible)")
            return common.FAILED
        prop = torch.cuda.get_device_properties(i)
        print(f"Device id:                     {i}")
        print(f"Name:                          {prop.name}")
        print(f"Major revision number:         {prop.major}")
        print(f"Minor revision number:         {prop.minor}")
        print(f"Total global memory:           {prop.total_memory}")
        print(f"Number of multiprocessors:     {prop.multi_processor_count}")
    return common.OK
