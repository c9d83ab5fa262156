"""``caffe2torch pairs``: aligned Siamese pair lists from labelled images; the arguments
and the writing are shared with ``triplets``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from caffe2torch.cli import common
from caffe2torch.errors import DataError, WriteError

IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif",
                            ".tiff", ".webp"})


def add_source_args(p: argparse.ArgumentParser, what: str) -> None:
    """The arguments ``pairs`` and ``triplets`` share."""
    p.add_argument("source", metavar="SOURCE",
                   help="a folder with one sub-folder of images per class, or a "
                        "'path label' list file")
    p.add_argument("--out-dir", default=".", metavar="DIR",
                   help="where to write the lists (default: the working directory)")
    p.add_argument("--count", type=int, metavar="N",
                   help=f"number of {what} (default: one per image)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draw (default 0)")
    p.add_argument("--prefix", default="train",
                   help="list file name prefix (default train; e.g. test for a test set)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_source_args(p, "pairs")


DESCRIPTION = """\
Write the aligned list files a Siamese net reads with two ImageData layers.

SOURCE is a folder with one sub-folder of images per class, or a 'path label' list file.
Line i of DIR/<prefix>1.txt and line i of DIR/<prefix>2.txt form pair i; both lines end in
the pair label, 1 (same class) or 0 (different classes), so either data layer's label top
can feed ContrastiveLoss. Half the pairs are similar (rounded up), none pairs an image with
itself, and the order is random (--seed). Paths are written as the folder was given (Caffe
reads them relative to the folder it runs in). For a folder, DIR/classes.txt lists 'label
name'; when DIR already has a different classes.txt (another SOURCE), the list goes to
DIR/<prefix>_classes.txt instead and the command says so.

Exit codes: 0 written; 2 usage or I/O error (no such SOURCE, too few classes or images)."""

EXAMPLES = """\
examples:
  caffe2torch pairs images/train --out-dir lists            # lists/train1.txt, train2.txt
  caffe2torch pairs images/test --out-dir lists --prefix test --count 2000
  caffe2torch pairs labelled.txt --out-dir lists --seed 7"""


def _images_by_folder(root: str) -> tuple[list[str], list[int], list[str]]:
    classes: list[str] = []
    paths: list[str] = []
    labels: list[int] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_dir():
            continue
        files = sorted(f.name for f in os.scandir(entry.path)
                       if f.is_file() and Path(f.name).suffix.lower() in IMAGE_SUFFIXES)
        if files:
            paths += [os.path.join(root, entry.name, f) for f in files]
            labels += [len(classes)] * len(files)
            classes.append(entry.name)
    if not classes:
        raise DataError("the folder has no class sub-folder holding images", path=root,
                        hint="lay out images as SOURCE/<class>/<image>, or give a "
                             "'path label' list file")
    return paths, labels, classes


def read_labelled_images(source: str) -> tuple[list[str], list[int], list[str] | None]:
    """(image paths, class labels, class names or None) of a folder or a list file."""
    from caffe2torch.data.listfile import read_list_file

    if os.path.isdir(source):
        return _images_by_folder(source)
    if not os.path.exists(source):
        raise DataError("no such folder or list file", path=source)
    entries = read_list_file(source)
    return [e.name for e in entries], [e.label for e in entries], None


def write_lists(args: argparse.Namespace, what: str, outs: list[Path],
                write: Callable[[list[str], list[int], int], None]) -> int:
    """Read SOURCE, then ``write(paths, labels, count)`` into ``outs``; the exit code."""
    if args.count is not None and args.count < 1:
        print(f"caffe2torch {what}: error: --count must be >= 1", file=sys.stderr)
        return common.USAGE
    try:
        paths, labels, classes = read_labelled_images(args.source)
        count = args.count if args.count is not None else len(paths)
        out_dir = Path(args.out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            write(paths, labels, count)
            if classes is not None:
                _write_classes(out_dir, args.prefix, classes)
        except ValueError as e:  # too few classes or items for the draw
            raise DataError(f"cannot draw {what}: {e}", path=args.source) from None
        except OSError as e:
            raise WriteError(f"cannot write the lists: {e.strerror or e}",
                             path=os.fspath(e.filename or out_dir)) from None
    except (DataError, WriteError) as e:
        print(common.format_error(e), file=sys.stderr)
        return common.USAGE
    n_classes = len(set(labels))
    common.note(f"{len(paths)} images in {n_classes} classes from {args.source}")
    print(f"Wrote {count} {what} to {', '.join(map(str, outs))}")
    return common.OK


def _write_classes(out_dir: Path, prefix: str, classes: list[str]) -> None:
    """``classes.txt`` (label, name); a different one already there (written for another
    SOURCE) is kept, and this one goes to ``<prefix>_classes.txt``."""
    text = "".join(f"{i} {name}\n" for i, name in enumerate(classes))
    path = out_dir / "classes.txt"
    if path.exists() and path.read_text() != text:
        path = out_dir / f"{prefix}_classes.txt"
        common.note(f"{out_dir / 'classes.txt'} lists other classes: kept it, wrote {path}")
    path.write_text(text)


def run(args: argparse.Namespace) -> int:
    from caffe2torch.metric.lists import write_pair_lists

    outs = [Path(args.out_dir) / f"{args.prefix}{k}.txt" for k in (1, 2)]

    def write(paths: list[str], labels: list[int], count: int) -> None:
        sim = write_pair_lists(paths, labels, outs[0], outs[1], count, args.seed)
        common.note(f"{int(sim.sum())} similar and {int(len(sim) - sim.sum())} dissimilar "
                    "pairs")

    return write_lists(args, "pairs", outs, write)
