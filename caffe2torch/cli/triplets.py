"""``caffe2torch triplets``: aligned anchor / positive / negative lists."""

from __future__ import annotations

import argparse
from pathlib import Path

from caffe2torch.cli.pairs import add_source_args, write_lists

ROLES = ("anchor", "positive", "negative")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_source_args(p, "triplets")


DESCRIPTION = """\
Write aligned anchor / positive / negative list files for a triplet net.

SOURCE is a folder with one sub-folder of images per class, or a 'path label' list file.
Line i of DIR/<prefix>_anchor.txt, DIR/<prefix>_positive.txt and DIR/<prefix>_negative.txt
form triplet i: the anchor and the positive are two different images of one class, the
negative is of another class. Each line ends in the image's class ('path class'). The
order is random (--seed). For a folder, DIR/classes.txt lists 'label name' (see `pairs`).

Exit codes: 0 written; 2 usage or I/O error (no such SOURCE, too few classes or images)."""

EXAMPLES = """\
examples:
  caffe2torch triplets images/train --out-dir lists
  caffe2torch triplets images/test --out-dir lists --prefix test --count 5000"""


def run(args: argparse.Namespace) -> int:
    from caffe2torch.metric.lists import write_triplet_lists

    outs = [Path(args.out_dir) / f"{args.prefix}_{role}.txt" for role in ROLES]

    def write(paths: list[str], labels: list[int], count: int) -> None:
        write_triplet_lists(paths, labels, (outs[0], outs[1], outs[2]), count, args.seed)

    return write_lists(args, "triplets", outs, write)
