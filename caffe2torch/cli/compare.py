"""``caffe2torch compare``: our blobs against real Caffe's (or onnxruntime's), layer by
layer, naming the first layer that differs."""

from __future__ import annotations

import argparse
import math

from caffe2torch.cli import common
from caffe2torch.cli.netargs import add_model_args, build_options, input_shapes, share_option

DESCRIPTION = """\
Run the net on the inputs stored in BLOBS (real Caffe's blobs) and compare, layer by layer
in Caffe's order, every blob with Caffe's: largest absolute and relative difference, and
the first layer beyond tolerance with its type and parameters. With --onnx, onnxruntime's
intermediate values of an exported model are compared with ours the same way (BLOBS then
only gives the inputs; without BLOBS, data-like inputs are made).

BLOBS is an .npz (keys: blob names) or a folder of <blob>.npy files ('/' in a name as
'__'). pycaffe writes one in five lines (python dump.py deploy.prototxt w.caffemodel
inputs.npz blobs.npz):

  import sys, numpy as np, caffe
  net = caffe.Net(sys.argv[1], sys.argv[2], caffe.TEST)
  for name in net.inputs: net.blobs[name].data[...] = np.load(sys.argv[3])[name]
  net.forward()
  np.savez(sys.argv[4], **{n: b.data for n, b in net.blobs.items()})

A blob passes when max |ours - reference| <= atol + rtol * max |reference|.

Exit codes: 0 every blob within tolerance; 1 a layer beyond it; 2 a bad option or an
unreadable file."""

EXAMPLES = """\
examples:
  caffe2torch compare deploy.prototxt blobs.npz --weights w.caffemodel
  caffe2torch compare deploy.prototxt blobs.npz -w w.caffemodel --onnx model.onnx
  caffe2torch compare deploy.prototxt --onnx model.onnx -w w.caffemodel"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("blobs", metavar="BLOBS", nargs="?",
                   help="Caffe's blobs: an .npz or a folder of .npy files (optional with --onnx)")
    p.add_argument("--onnx", metavar="MODEL.onnx",
                   help="compare onnxruntime's intermediate outputs of this exported model "
                   "with ours instead")
    # defaults: export.compare's DEFAULT_RTOL / DEFAULT_ATOL (not imported here: it loads
    # torch, which `caffe2torch --help` must not)
    p.add_argument("--rtol", type=float,
                   help="relative tolerance, of the blob's largest magnitude (default 1e-4)")
    p.add_argument("--atol", type=float, help="absolute tolerance (default 1e-5)")
    p.add_argument("--all", action="store_true",
                   help="print every row (default: up to the first failing layer and 3 after)")


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3g}"


def run(args: argparse.Namespace) -> int:
    from caffe2torch.export.compare import (
        DEFAULT_ATOL,
        DEFAULT_RTOL,
        compare_with_caffe,
        compare_with_onnx,
        read_dump,
    )

    if args.blobs is None and not args.onnx:
        common.note("error: give BLOBS (Caffe's blob dump), --onnx MODEL.onnx, or both")
        return common.USAGE
    from caffe2torch.export.onnx import load_for_export

    rtol = DEFAULT_RTOL if args.rtol is None else args.rtol
    atol = DEFAULT_ATOL if args.atol is None else args.atol
    dump = read_dump(args.blobs) if args.blobs else None
    net, pruned = load_for_export(
        args.model, weights=args.weights, phase=args.phase, level=args.level,
        stages=args.stage, input_shapes=input_shapes(args.input_shape),
        share=share_option(args), proto=args.proto, **build_options(args),
    )
    for line in pruned:
        common.note(f"note: {line}")
    if args.onnx:
        result = compare_with_onnx(net, args.onnx, dump, rtol, atol)
        what = "onnxruntime"
    else:
        assert dump is not None
        result = compare_with_caffe(net, dump, rtol, atol)
        what = "Caffe"
    width = max([len(r.layer) for r in result.rows] + [5])
    bwidth = max([len(r.blob) for r in result.rows] + [4])
    print(f"{'layer':<{width}}  {'type':<14} {'blob':<{bwidth}}  {'max abs':>9}  "
          f"{'max rel':>9}")
    shown_after = 0
    for row in result.rows:
        status = row.note or ("ok" if row.ok else "BEYOND TOLERANCE")
        print(f"{row.layer:<{width}}  {row.type:<14} {row.blob:<{bwidth}}  "
              f"{_fmt(row.max_abs):>9}  {_fmt(row.max_rel):>9}  {status}")
        if result.first_bad is not None and not args.all:
            if row is not result.first_bad and shown_after == 0 and \
                    result.rows.index(row) < result.rows.index(result.first_bad):
                continue
            shown_after += 1
            if shown_after > 3:
                print(f"... ({len(result.rows) - result.rows.index(row) - 1} more rows; --all)")
                break
    compared = [r for r in result.rows if not r.note]
    if result.missing:
        common.note(f"not in the blob dump (not compared): {len(result.missing)} blob(s), e.g. "
                    + ", ".join(result.missing[:5]))
    if not compared:
        common.note(f"error: no blob could be compared with {what}'s")
        return common.FAILED
    bad = result.first_bad
    if bad is None:
        print(f"all {len(compared)} compared blobs within tolerance of {what}'s "
              f"(atol {atol:g}, rtol {rtol:g})")
        return common.OK
    print(f"\nfirst layer beyond tolerance: '{bad.layer}' ({bad.type}), blob '{bad.blob}': "
          f"max abs {_fmt(bad.max_abs)}, max rel {_fmt(bad.max_rel)}"
          + (f" ({bad.note})" if bad.note else ""))
    if bad.in_place:
        print(f"  (then in place on the same blob: {', '.join(bad.in_place)}; the dump holds "
              "only the last value)")
    for line in result.first_bad_params.splitlines():
        print(f"  {line}")
    common.note(f"error: layer '{bad.layer}' ({bad.type}) is the first whose output differs "
                f"from {what}'s beyond tolerance (details above)")
    return common.FAILED
