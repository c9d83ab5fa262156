"""``caffe2torch triplets SOURCE [--out-dir DIR] [--count N] [--seed S] [--prefix train]``:
write aligned anchor / positive / negative list files for a triplet net.

SOURCE is a folder with one sub-folder of images per class, or a ``path label`` list file.
Line i of ``DIR/train_anchor.txt``, ``DIR/train_positive.txt`` and
``DIR/train_negative.txt`` form triplet i: the anchor and the positive are two different
images of one class, the negative is of another class. Each line ends in the image's class
(``path class``). The order is random (``--seed``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from caffe2torch.cli.pairs import add_source_args, write_lists

ROLES = ("anchor", "positive", "negative")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("triplets", help="write aligned triplet lists from labelled images",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_args(p, "triplets")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from caffe2torch.metric.lists import write_triplet_lists

    outs = [Path(args.out_dir) / f"{args.prefix}_{role}.txt" for role in ROLES]

    def write(paths: list[str], labels: list[int], count: int) -> None:
        write_triplet_lists(paths, labels, (outs[0], outs[1], outs[2]), count, args.seed)

    return write_lists(args, "triplets", outs, write)
