"""``caffe2torch plot``: loss and accuracy curves from a metrics CSV or a Caffe log."""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict

from caffe2torch.cli import common
from caffe2torch.errors import ParseError

Series = dict[str, list[tuple[int, float]]]

_ITER = re.compile(r"Iteration (\d+)")
_OUTPUT = re.compile(r"(Train|Test) net output #(\d+): (\S+) = ([-+.\deEinfa]+)")
_TEST_NET = re.compile(r"Testing net \(#(\d+)\)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="LOG_OR_CSV",
                   help="the metrics CSV of `caffe2torch train`, or a Caffe training log")
    p.add_argument("-o", "--out", default="curves.png", metavar="FILE",
                   help="the image to write, .png, .svg or .pdf (default curves.png)")
    p.add_argument("--output", dest="out", action=common.DeprecatedAlias, new="-o/--out FILE",
                   help=argparse.SUPPRESS)


DESCRIPTION = """\
Draw the loss and accuracy curves of a training run, from the metrics CSV that
`caffe2torch train` writes (--log-csv) or from a Caffe training log (the glog lines
"Iteration N", "Train net output #k: name = v" and "Test net output #k: name = v" that
Caffe's tools/extra/parse_log.py reads). Needs matplotlib.

Left panel: every metric whose name holds "loss" (train and test); right panel: the other
outputs (accuracy...).

Exit codes: 0 written; 1 nothing to plot; 2 usage or I/O error."""

EXAMPLES = """\
examples:
  caffe2torch plot snapshots/mnist_siamese_metrics.csv -o curves.png
  caffe2torch train -solver solver.prototxt 2> train.log; caffe2torch plot train.log"""


def read_csv_series(path: str) -> Series:
    from caffe2torch.solver.metrics import read_metrics

    out: Series = defaultdict(list)
    for row in read_metrics(path):
        if row["net"] == "train" and row["metric"] in ("lr", "smoothed_loss", "iteration_loss"):
            continue
        out[f"{row['net']}/{row['metric']}"].append((row["iteration"], row["value"]))
    return dict(out)


def read_log_series(lines: list[str]) -> Series:
    out: Series = defaultdict(list)
    iteration = -1
    test_net = 0
    for line in lines:
        m = _ITER.search(line)
        if m:
            iteration = int(m.group(1))
        t = _TEST_NET.search(line)
        if t:
            test_net = int(t.group(1))
        o = _OUTPUT.search(line)
        if o is None or iteration < 0:
            continue
        try:
            value = float(o.group(4))
        except ValueError:
            continue
        net = "train" if o.group(1) == "Train" else f"test{test_net}"
        out[f"{net}/{o.group(3)}"].append((iteration, value))
    return dict(out)


def read_series(path: str) -> Series:
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise ParseError(f"cannot read the file: {e.strerror or e}", path=path) from None
    if text.startswith("iteration,seconds,net,metric,value"):
        return read_csv_series(path)
    return read_log_series(text.splitlines())


_ELEMENT = re.compile(r"^(.*)\[(\d+)\]$")


def collapse_elements(series: Series) -> tuple[Series, list[str]]:
    """A net output with several elements (a data top nobody reads, such as the second pair
    label ``sim_p``) is one series per element in our CSV (``name[k]``) and several values
    per iteration in a Caffe log: draw it as one series, the mean per iteration. Returns
    the series and the names collapsed."""
    groups: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for key, points in series.items():
        m = _ELEMENT.match(key)
        groups[m.group(1) if m else key].extend(points)
    out: Series = {}
    collapsed = []
    for key, points in groups.items():
        by_iter: dict[int, list[float]] = defaultdict(list)
        for it, v in points:
            by_iter[it].append(v)
        n = max(len(v) for v in by_iter.values())
        if n == 1:
            out[key] = points
            continue
        out[f"{key} (mean of {n})"] = [(it, sum(v) / len(v)) for it, v in sorted(by_iter.items())]
        collapsed.append(key)
    return out, collapsed


def run(args: argparse.Namespace) -> int:
    series, collapsed = collapse_elements(read_series(args.source))
    for name in collapsed:
        common.note(f"caffe2torch plot: note: {name} has several elements per iteration, drawn "
                    "as their mean (if it is a data top nobody reads, a Silence layer keeps "
                    "it out of the log: see `caffe2torch lint --explain C2T207`)")
    if not series:
        print(f"caffe2torch plot: error: {args.source}: no training metrics found "
              "(expected a metrics CSV or a Caffe log)", file=sys.stderr)
        return common.FAILED
    from caffe2torch.metric.plots import MissingExtraError, require_matplotlib

    try:
        require_matplotlib()
    except MissingExtraError as e:
        common.report(e)
        return common.USAGE
    import matplotlib.pyplot as plt

    losses = {k: v for k, v in series.items() if "loss" in k.split("/", 1)[1]}
    others = {k: v for k, v in series.items() if k not in losses}
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, panel, title in zip(axes[0], panels, ("loss" if losses else "outputs", "outputs")):
        for name, points in sorted(panel.items()):
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=name, marker="o" if len(xs) < 30 else None)
        ax.set_xlabel("iteration")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    try:
        fig.savefig(args.out, dpi=100)
    except OSError as e:
        from caffe2torch.errors import WriteError

        raise WriteError(f"cannot write the image: {e.strerror or e}", path=args.out
                         ) from None
    finally:
        plt.close(fig)
    common.note(f"wrote {args.out} ({', '.join(sorted(series))})")
    return common.OK
