"""``caffe2torch test``: Caffe's ``caffe test``, and metric mode for embedding nets
(see caffe2torch.metric.evaluate for the preprocessing)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from caffe2torch.cli import common
from caffe2torch.cli.netargs import (
    add_image_cache_arg,
    add_netstate_args,
    add_proto_arg,
    add_python_layers_arg,
    add_share_arg,
    apply_image_cache,
    build_options,
    check_shape_names,
    input_shapes,
    share_option,
)

if TYPE_CHECKING:
    import numpy as np

    Scatter = tuple[np.ndarray, np.ndarray | None]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="M", help="net prototxt")
    add_proto_arg(p)
    p.add_argument("--input-shape", action="append", default=[], metavar="BLOB=N,C,H,W",
                   help="replace the data layer of these tops by an input of this shape "
                   "(fed zeros; repeatable)")
    p.add_argument("--weights", metavar="W", help="caffemodel(s), comma-separated")
    p.add_argument("--iterations", type=int, default=50, metavar="N",
                   help="batches to score (default 50)")
    p.add_argument("--gpu", metavar="ID", help="GPU id (default: CPU)")
    add_netstate_args(p, "TEST")
    p.add_argument("--quiet", "-q", action="store_true", help="no per-batch log lines")
    p.add_argument("--compile", action="store_true",
                   help="run the net through torch.compile (inductor): compiled at the "
                   "first pass, which takes a while on a CPU; pays off on long runs")
    p.add_argument("--channels-last", action="store_true",
                   help="lay 4-D params and blobs out NHWC (graph.layout; same values)")
    add_image_cache_arg(p)
    add_share_arg(p)
    add_python_layers_arg(p)
    m = p.add_argument_group("metric mode (embedding nets)")
    m.add_argument("--pairs", nargs=2, metavar=("LIST1", "LIST2"),
                   help="verify the pairs of two aligned Siamese lists")
    m.add_argument("--val-pairs", nargs=2, metavar=("LIST1", "LIST2"),
                   help="pairs that choose the distance threshold (default: a split of "
                        "--pairs)")
    m.add_argument("--val-fraction", type=float, default=0.5, metavar="F",
                   help="share of --pairs that chooses the threshold when there are no "
                        "--val-pairs (default 0.5)")
    m.add_argument("--triplets", nargs=3, metavar=("ANCHORS", "POSITIVES", "NEGATIVES"),
                   help="triplet accuracy over three aligned lists")
    m.add_argument("--retrieval", metavar="LIST",
                   help="Recall@K and mAP of a 'path class' list (leave-one-out)")
    m.add_argument("--gallery", metavar="LIST", help="rank this list for each --retrieval "
                   "query instead of the other queries")
    m.add_argument("--ks", default="1,5,10", metavar="K,K,...",
                   help="the K of Recall@K (default 1,5,10)")
    m.add_argument("--feature", metavar="BLOB", help="the embedding blob (default: the one "
                   "non-loss output, else the first bottom of the metric loss)")
    m.add_argument("--input", metavar="BLOB", help="the data top the images feed (default: "
                   "the first data layer's)")
    m.add_argument("--preprocess-from", metavar="NET", help="take the image preprocessing "
                   "from this prototxt's data layer (e.g. the train_test net of a deploy net)")
    m.add_argument("--batch", type=int, metavar="N",
                   help="images per forward pass (default: the input's batch size)")
    m.add_argument("--seed", type=int, default=0, help="seed of the validation split")
    m.add_argument("--roc", metavar="PNG", help="draw the ROC curve of --pairs")
    m.add_argument("--scatter", metavar="PNG", help="scatter the embeddings (2-D, or their "
                   "first two principal components)")


DESCRIPTION = """\
Score a net as Caffe's `caffe test` does: run it (TEST phase by default) over -iterations
batches drawn by its own data layers (paths relative to the working directory) and print
the loss and each output averaged. Caffe's log lines go to stderr (`Batch i, name = v`);
the summary also goes to stdout (`Loss: x`, then `name = value` per output). Caffe's
one-dash flags (-model, -weights, -iterations, -gpu) work too.

Metric mode, for embedding nets (Siamese, triplet), scores the embeddings of the images
named in list files instead: pair verification (accuracy at a threshold chosen on
validation pairs, ROC AUC, EER), triplet accuracy, or retrieval (Recall@K, mAP). Pair lists
are Caffe's Siamese lists (line i of each is pair i, both ending in the pair label, 1
similar / 0 dissimilar); triplet, query and gallery lists end in the class. A deploy net
usually lacks the training net's preprocessing (scale, mean): give the training net with
--preprocess-from.

Exit codes: 0 scored; 1 the net cannot be built or run; 2 usage or I/O error (a missing
model, weights, list file or image)."""

EXAMPLES = """\
examples:
  caffe2torch test -model train_val.prototxt -weights w.caffemodel -iterations 100
  caffe2torch test -model deploy.prototxt -weights w.caffemodel --pairs test1.txt test2.txt \\
      --val-pairs train1.txt train2.txt --preprocess-from train_test.prototxt --roc roc.png
  caffe2torch test -model deploy.prototxt -weights w.caffemodel \\
      --triplets anchor.txt positive.txt negative.txt
  caffe2torch test -model deploy.prototxt -weights w.caffemodel --retrieval query.txt \\
      --gallery gallery.txt --ks 1,5,10"""


def _metric_mode(args: argparse.Namespace) -> bool:
    return bool(args.pairs or args.triplets or args.retrieval)


def run(args: argparse.Namespace) -> int:
    from caffe2torch.runtime.heap import keep_freed_memory

    keep_freed_memory()  # each batch reuses the last one's memory (runtime.heap)
    apply_image_cache(args)
    if _metric_mode(args) or _metric_only_flags(args):
        return _run_metric(args)
    return _run_caffe(args)


def _metric_only_flags(args: argparse.Namespace) -> list[str]:
    """Metric-mode flags given without a metric mode."""
    flags = {"--val-pairs": args.val_pairs, "--gallery": args.gallery, "--roc": args.roc,
             "--scatter": args.scatter, "--feature": args.feature, "--input": args.input,
             "--preprocess-from": args.preprocess_from, "--batch": args.batch}
    return [k for k, v in flags.items() if v is not None]


def _run_caffe(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from caffe2torch.graph.fed import build_fed_net, stream_of
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir.netstate import NetState
    from caffe2torch.runtime.devices import device_flag, resolve_device
    from caffe2torch.runtime.glog import GlogWriter, fmt

    if args.iterations < 1:
        print("caffe2torch test: error: -iterations must be >= 1", file=sys.stderr)
        return common.USAGE
    log = GlogWriter(None if args.quiet else sys.stderr)
    try:
        requested = device_flag(args.gpu)
    except ValueError as e:
        print(f"caffe2torch test: error: {e}", file=sys.stderr)
        return common.USAGE
    from caffe2torch.proto import caffe_pb2

    device = resolve_device(caffe_pb2.SolverParameter(), requested, log)
    if device.type == "cpu":
        log.info("Use CPU.", "caffe.cpp:271")
    stages = [s.strip() for v in args.stage for s in v.split(",") if s.strip()]
    net_param, source_map = read_net_with_positions(args.model, args.proto)
    shapes = input_shapes(args.input_shape)
    check_shape_names(shapes, net_param, args.model)
    net = build_fed_net(net_param, NetState.of(args.phase, args.level, stages),
                        source_map=source_map, device=device, options=build_options(args),
                        share=share_option(args), input_shapes=shapes)
    if args.weights:
        for name in (w.strip() for w in args.weights.split(",")):
            if name:
                report = net.copy_from(name, args.proto)
                for ignored in report.ignored:
                    log.info(f"Ignoring source layer {ignored}", "net.cpp:678")
                warning = report.nothing_copied(name)
                if warning:  # shown with -q too: the scores would be the fillers'
                    common.note(f"caffe2torch test: warning: {warning}")
    else:
        common.note("caffe2torch test: note: no -weights: scoring the fillers' values")
    if args.channels_last:
        from caffe2torch.graph.layout import use_channels_last

        use_channels_last(net)
    if args.compile:
        from caffe2torch.graph.compile import compile_net

        compile_net(net)
    zeros = sorted(stream_of(net).zeros)
    if zeros:  # Caffe scores them silently (an Input blob starts as zeros)
        unfed = ", ".join(f"'{n}'" for n in zeros)
        common.note(f"caffe2torch test: note: no data layer feeds {unfed}: the net is scored "
                    "on zeros, as Caffe's test does (score the train_val net, whose data "
                    "layers read the images, or give a deploy net images with --pairs, "
                    "--triplets or --retrieval)")
    log.info(f"Running for {args.iterations} iterations.", "caffe.cpp:283")
    names: list[str] = []
    scores: np.ndarray | None = None
    loss = np.float32(0)
    with torch.no_grad():
        for i in range(args.iterations):
            out = net(stream_of(net)())
            loss = np.float32(loss + np.float32(float(net.loss(out))))
            values, batch_names = [], []
            for name in net.outputs:
                flat = out[name].detach().float().cpu().reshape(-1).numpy()
                for v in flat:
                    log.info(f"Batch {i}, {name} = {fmt(v)}", "caffe.cpp:312")
                values.append(flat)
                batch_names += [name] * flat.size
            row = np.concatenate(values) if values else np.zeros(0, np.float32)
            if scores is None:
                names, scores = batch_names, row.astype(np.float32)
            else:
                scores += row
    loss = np.float32(loss / np.float32(args.iterations))
    log.info(f"Loss: {fmt(loss)}", "caffe.cpp:317")
    print(f"Loss: {fmt(loss)}")
    for name, total in zip(names, scores if scores is not None else []):
        mean = np.float32(total / np.float32(args.iterations))
        weight = net.loss_weights.get(name, 0.0)
        extra = f" (* {fmt(weight)} = {fmt(np.float32(weight) * mean)} loss)" if weight else ""
        log.info(f"{name} = {fmt(mean)}{extra}", "caffe.cpp:330")
        print(f"{name} = {fmt(mean)}{extra}")
    return common.OK


# --------------------------------------------------------------------------- metric mode


def _usage(message: str) -> int:
    print(f"caffe2torch test: error: {message}", file=sys.stderr)
    return common.USAGE


def _check_metric_flags(args: argparse.Namespace) -> str | None:
    """A usage problem of the metric flags, or None."""
    if not _metric_mode(args):
        return (f"{', '.join(_metric_only_flags(args))} need(s) a metric mode: --pairs, "
                "--triplets or --retrieval")
    if (args.val_pairs or args.roc) and not args.pairs:
        return "--val-pairs and --roc go with --pairs"
    if args.gallery and not args.retrieval:
        return "--gallery goes with --retrieval"
    if not 0 < args.val_fraction < 1:
        return f"--val-fraction must be between 0 and 1, got {args.val_fraction}"
    if args.batch is not None and args.batch < 1:
        return f"--batch must be >= 1, got {args.batch}"
    return None


def _ks(text: str) -> list[int]:
    ks = [int(k) for k in text.replace(" ", "").split(",") if k]
    if not ks or min(ks) < 1:
        raise ValueError(text)
    return ks


def _per_class_rows(per_class: dict[int, float]) -> dict[str, str]:
    import numpy as np

    if len(per_class) <= 20:
        return {f"class {c}": f"{v:.4f}" for c, v in sorted(per_class.items())}
    values = np.array(list(per_class.values()))
    return {f"per class ({len(values)})": f"min {values.min():.4f}, median "
            f"{np.median(values):.4f}, max {values.max():.4f}"}


def _report_pairs(args: argparse.Namespace, net: Any, feature: str, opts: dict[str, Any]
                  ) -> Scatter:
    from caffe2torch.metric import evaluate as ev
    from caffe2torch.metric import plots

    list1, list2 = args.pairs  # nargs=2
    r = ev.evaluate_pairs(net, list1, list2, feature,
                          val_lists=tuple(args.val_pairs) if args.val_pairs else None,
                          validation_fraction=args.val_fraction, seed=args.seed, **opts)
    chosen = "--val-pairs" if args.val_pairs else "a validation split"
    print(f"Pair verification ({' / '.join(args.pairs)}: {r.n_pairs} pairs; "
          f"feature '{feature}')")
    print(ev.as_table({
        "threshold": f"{r.threshold:.6g}  (chosen on {r.n_validation} pairs of {chosen}: "
                     f"accuracy {r.validation_accuracy:.4f})",
        "accuracy": f"{r.accuracy:.4f}  ({r.n_scored} pairs)",
        "ROC AUC": f"{r.auc:.4f}",
        "EER": f"{r.eer:.4f}",
    }))
    if args.roc:
        plots.save_roc_png(r.roc, args.roc, title=f"pair verification, AUC {r.auc:.3f}",
                           eer=r.eer, threshold=r.threshold)
        common.note(f"ROC curve: {args.roc}")
    return r.embeddings, _folder_classes(args.pairs)


def _folder_classes(lists: Sequence[str]) -> np.ndarray | None:
    """The class of each distinct image of pair lists (their embedding rows, sorted by
    name), taken from its folder as `caffe2torch pairs` reads SOURCE/<class>/<image>; None
    when the images are not in class folders."""
    import numpy as np

    from caffe2torch.metric import evaluate as ev

    refs1, refs2, _ = ev.read_pair_lists(*lists)
    names = np.unique(np.array([r.name for r in refs1 + refs2], dtype=object))
    folders = np.array([os.path.basename(os.path.dirname(str(n))) for n in names])
    return folders if len(set(folders.tolist())) > 1 else None


def _warn_raw_pixels(model: str, pre: Any) -> None:
    """A deploy net without scale or mean feeds 0-255 pixels; if its training net scaled
    them, every distance (and the threshold) is off by that scale, silently."""
    t = pre.transform
    if t.scale != 1 or len(t.mean_values) or t.mean is not None:
        return
    common.note(
        f"caffe2torch test: warning: {model} gives its input '{pre.input_blob}' no "
        "preprocessing (no transform_param scale or mean), so the images feed as 0-255 "
        "pixels; if the net was trained on scaled pixels (e.g. transform_param { scale: "
        "0.00390625 }), pass --preprocess-from TRAIN_NET (the train_test prototxt)")


def _report_triplets(args: argparse.Namespace, net: Any, feature: str,
                     opts: dict[str, Any]) -> Scatter:
    from caffe2torch.metric import evaluate as ev

    anchors, positives, negatives = args.triplets  # nargs=3
    t = ev.evaluate_triplets(net, anchors, positives, negatives, feature, **opts)
    print(f"Triplets ({', '.join(args.triplets)}: {t.n_triplets} triplets; "
          f"feature '{feature}')")
    print(ev.as_table({"accuracy": f"{t.accuracy.overall:.4f}  (d(a,p) < d(a,n))",
                       **_per_class_rows(t.accuracy.per_class)}))
    if t.every_triplet is not None:
        every = t.every_triplet
        print(f"Every triplet of the {len(t.embeddings)} listed images (each as anchor, "
              "each other image of its class as positive, each of another as negative)")
        print(ev.as_table({"accuracy": f"{every.overall:.4f}",
                           **_per_class_rows(every.per_class)}))
    return t.embeddings, t.labels


def _report_retrieval(args: argparse.Namespace, net: Any, feature: str,
                      opts: dict[str, Any], ks: list[int]) -> Scatter:
    from caffe2torch.metric import evaluate as ev

    q = ev.evaluate_retrieval(net, args.retrieval, args.gallery, feature, ks, **opts)
    against = f"gallery {args.gallery}" if args.gallery else "leave-one-out"
    print(f"Retrieval ({args.retrieval}: {q.n_queries} queries, {against}; "
          f"feature '{feature}')")
    print(ev.as_table({**{f"Recall@{k}": f"{v:.4f}" for k, v in q.recall.items()},
                       "mAP": f"{q.map:.4f}"}))
    return q.embeddings, q.labels


def _save_scatter(path: str, feature: str, scatter: Scatter) -> int:
    from caffe2torch.metric import plots

    try:
        points, projected = plots.to_2d(scatter[0])
    except ValueError as e:
        return _usage(f"--scatter: {e}")
    title = (f"'{feature}': first two principal components" if projected
             else f"'{feature}' (2-D)")
    plots.save_embedding_scatter_png(points, scatter[1], path, title=title)
    common.note(f"feature plot: {path}")
    return common.OK


def _run_metric(args: argparse.Namespace) -> int:
    from caffe2torch.errors import DataError, WriteError
    from caffe2torch.metric import evaluate as ev
    from caffe2torch.metric import plots
    from caffe2torch.proto import caffe_pb2
    from caffe2torch.runtime.devices import device_flag, resolve_device
    from caffe2torch.runtime.glog import GlogWriter

    problem = _check_metric_flags(args)
    if problem:
        return _usage(problem)
    try:
        ks = _ks(args.ks)
    except ValueError:
        return _usage(f"--ks {args.ks!r}: expected positive integers like 1,5,10")
    try:
        requested = device_flag(args.gpu)
    except ValueError as e:
        return _usage(str(e))
    try:
        if args.roc or args.scatter:
            plots.require_matplotlib()  # fail before the long part
        lists = [*(args.pairs or []), *(args.triplets or []),
                 *([args.retrieval] if args.retrieval else [])]
        device = resolve_device(caffe_pb2.SolverParameter(), requested, GlogWriter(None))
        weights = [w.strip() for w in (args.weights or "").split(",") if w.strip()]
        if not weights:
            common.note("caffe2torch test: note: no -weights: scoring the fillers' values")
        stages = [s.strip() for v in args.stage for s in v.split(",") if s.strip()]
        net, pre = ev.load_metric_net(
            args.model, weights, lists=lists, phase=args.phase, level=args.level,
            stages=stages, input_blob=args.input, batch=args.batch,
            preprocess_from=args.preprocess_from, device=device, share=share_option(args))
        if args.preprocess_from is None:
            _warn_raw_pixels(args.model, pre)
        feature = args.feature or ev.default_feature_blob(net)
        opts: dict[str, Any] = {"batch": args.batch, "preprocess": pre}
        scatter: Scatter | None = None
        if args.pairs:
            scatter = _report_pairs(args, net, feature, opts)
        if args.triplets:
            scatter = _report_triplets(args, net, feature, opts)
        if args.retrieval:
            scatter = _report_retrieval(args, net, feature, opts, ks)
        if args.scatter and scatter is not None:
            return _save_scatter(args.scatter, feature, scatter)
    except (DataError, WriteError, plots.MissingExtraError) as e:
        print(common.format_error(e), file=sys.stderr)
        return common.USAGE
    return common.OK
