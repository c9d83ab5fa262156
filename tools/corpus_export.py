"""Export every BVLC-layer deploy net of the corpus (../shared/corpus) to ONNX, check it
with onnxruntime, convert it to standalone PyTorch and run that too; print the table.

    python tools/corpus_export.py [--corpus DIR] [--only SUBSTRING] [--no-convert]

A deploy net: its TEST-phase net has no data layer other than Input (the prototxt gives
its input shapes). A BVLC-layer net: every layer type is one of BVLC Caffe's (not a fork
type); ``--forks`` takes every net whose types are registered. Each export has a symbolic
batch (or says why not) and is verified by onnxruntime at batch 1 and 3.

Params get deterministic random values (N(0, 1/fan_in) weights) so that no output
is trivially zero, and every BatchNorm the statistics of its input on random data. An
export passes when every output of onnxruntime (and of the generated module) is within
1e-4 x max|output| + 1e-5 of PyTorch.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import caffe2torch as c2t  # noqa: E402
from caffe2torch.errors import CaffeError  # noqa: E402
from caffe2torch.export.onnx import export_onnx, sample_inputs  # noqa: E402
from caffe2torch.export.standalone import convert_net  # noqa: E402
from caffe2torch.ir import NetState, filter_layers  # noqa: E402
from caffe2torch.layers.bvlc.normalization import CaffeBatchNorm  # noqa: E402
from caffe2torch.layers.registry import find_layer_spec  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
NET_FORMATS = {"V0", "V1", "V2"}


@dataclass
class Row:
    path: str
    status: str  # ok, onnx-fail, convert-fail, skip:<why>
    detail: str = ""
    seconds: float = 0.0


# BVLC Caffe's layer types (its layer factory registrations)
BVLC_TYPES = frozenset({
    "AbsVal", "Accuracy", "ArgMax", "BNLL", "BatchNorm", "BatchReindex", "Bias", "Clip",
    "Concat", "ContrastiveLoss", "Convolution", "Crop", "Data", "Deconvolution", "Dropout",
    "DummyData", "ELU", "Eltwise", "Embed", "EuclideanLoss", "Exp", "Filter", "Flatten",
    "HDF5Data", "HDF5Output", "HingeLoss", "Im2col", "ImageData", "InfogainLoss",
    "InnerProduct", "Input", "LRN", "LSTM", "LSTMUnit", "Log", "MVN", "MemoryData",
    "MultinomialLogisticLoss", "PReLU", "Parameter", "Pooling", "Power", "Python", "RNN",
    "ReLU", "Reduction", "Reshape", "SPP", "Scale", "Sigmoid", "SigmoidCrossEntropyLoss",
    "Silence", "Slice", "Softmax", "SoftmaxWithLoss", "Split", "Swish", "TanH", "Threshold",
    "Tile", "WindowData",
})


def bvlc_types() -> set[str]:
    """BVLC's types and the V0/V1 aliases the registry knows for them."""
    out = set(BVLC_TYPES)
    for name in BVLC_TYPES:
        spec = find_layer_spec(name)
        if spec is not None:
            out.update(spec.aliases)
    return out


def fill_random(net: c2t.CaffeNet, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    with torch.no_grad():
        for name in net.layer_names:
            module = net.module(name)
            kind = net.ir.layer(name).type
            for i, blob in enumerate(module.blobs):
                if id(blob) in seen or blob.numel() == 0:
                    continue
                seen.add(id(blob))
                shape = tuple(blob.shape)
                if kind == "BatchNorm":
                    value = [torch.randn(shape, generator=gen) * 0.1,
                             torch.rand(shape, generator=gen) + 0.5, torch.ones(shape)][i]
                elif len(shape) >= 2:
                    fan_in = math.prod(shape[1:]) or 1
                    value = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
                else:
                    value = 1.0 + torch.randn(shape, generator=gen) * 0.1 if kind in (
                        "Scale", "PReLU") else torch.randn(shape, generator=gen) * 0.1
                blob.copy_(value)
    calibrate_batch_norm(net)
    tame_box_regressors(net)


def tame_box_regressors(net: c2t.CaffeNet, factor: float = 0.02) -> None:
    """Scale down the convolutions that predict a DetectionOutput's box offsets: random
    regressors give offsets of tens, whose exp() makes boxes of 1e20 and more, where float32
    rounding of the offsets alone moves the boxes by more than any tolerance. Trained SSD
    regressors predict offsets near 0 (boxes near their priors); so do these."""
    ir = net.ir
    todo = [ly.bottoms[0] for ly in ir.layers if ly.type == "DetectionOutput" and ly.bottoms]
    seen: set = set()
    with torch.no_grad():
        while todo:
            ref = todo.pop()
            if ref in seen or ref not in ir.producer:
                continue
            seen.add(ref)
            layer = ir.layers[ir.producer[ref][0]]
            if layer.type == "Convolution":
                for blob in net.module(layer.name).blobs:
                    blob.mul_(factor)
            else:
                todo.extend(layer.bottoms)


def calibrate_batch_norm(net: c2t.CaffeNet) -> None:
    """Give every BatchNorm the statistics of its own input on random data, as trained
    weights have them: without it, random statistics leave deep residual nets with
    activations in the thousands, where float32 rounding alone moves the outputs by
    several percent (face.prototxt of xialuxi/arcface-caffe: PyTorch float32 vs float64
    differ by 8%) and no exporter can be checked.

    One forward in Caffe's TRAIN mode from zeroed blobs does it: BatchNorm then normalises
    with the batch statistics and accumulates mean, variance and factor 1 into its blobs,
    layer after layer (BatchNorm::Forward_cpu), on random inputs of the net's shapes."""
    norms = [m for m in net.modules() if isinstance(m, CaffeBatchNorm)]
    if not norms or not net.inputs:
        return
    saved = [m.use_global_stats for m in norms]
    with torch.no_grad():
        for m in norms:
            m.use_global_stats = None  # TRAIN mode: batch statistics
            for blob in m.blobs:
                blob.zero_()
        net.train(True)
        try:
            # the net's own batch (loss layers may need it); not the checks' inputs (seed
            # 0), where x - mean would cancel and 1/sqrt(var + eps) amplify the rounding
            net(*sample_inputs(net, seed=1))
        finally:
            net.train(False)
            for m, flag in zip(norms, saved):
                m.use_global_stats = flag


def candidates(corpus: Path, only: str | None) -> list[Path]:
    rows = csv.DictReader((corpus / "MANIFEST.tsv").open(), delimiter="\t")
    out = []
    for row in rows:
        if row["format"] in NET_FORMATS and (only is None or only in row["path"]):
            out.append(corpus / row["path"])
    return out


def _run_generated(py: Path, feeds: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    spec = importlib.util.spec_from_file_location(f"gen_{abs(hash(py))}", py)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model()
    with torch.no_grad():
        out = model(*feeds)
    return out if isinstance(out, dict) else {model.outputs[0]: out}


def check(path: Path, bvlc: set[str], convert: bool, workdir: Path,
          with_forks: bool = False) -> Row:
    rel = str(path)
    try:
        net_param = c2t.read_net(path)
    except CaffeError as err:
        return Row(rel, "skip:unreadable", err.message[:120])
    types = {ly.type for ly in net_param.layer}
    forks = sorted(types - bvlc)
    if forks and not with_forks:
        return Row(rel, "skip:fork-layers", ", ".join(forks)[:120])
    unknown = sorted(t for t in types if find_layer_spec(t) is None)
    if unknown:
        return Row(rel, "skip:unregistered", ", ".join(unknown)[:120])
    test_layers = [net_param.layer[i] for i in filter_layers(net_param.layer, NetState.of("TEST"))]
    if any(
        (spec := find_layer_spec(ly.type)) is not None and spec.data and spec.type != "Input"
        for ly in test_layers
    ):
        return Row(rel, "skip:not-deploy", "data layers read a source")
    try:
        net = c2t.load_net(net_param, phase="TEST")
    except CaffeError as err:
        return Row(rel, "skip:does-not-build", err.message[:160])
    if any(ly.type != "Input" for ly in net.ir.data_layers()) or not net.inputs:
        return Row(rel, "skip:not-deploy", "data layers read a source")
    fill_random(net)
    start = time.perf_counter()
    try:
        report = export_onnx(net, workdir / "m.onnx", verify=True)
    except CaffeError as err:
        return Row(rel, "onnx-fail", err.message[:200], time.perf_counter() - start)
    assert report.max_diff is not None
    bad = [k for k, d in report.max_diff.items() if not d <= RTOL * report.scale[k] + ATOL]
    if bad:
        worst = ", ".join(f"{k}: {report.max_diff[k]:.3g}" for k in bad)
        return Row(rel, "onnx-fail", f"differs: {worst}", time.perf_counter() - start)
    detail = f"max diff {report.worst:.2g}"
    if report.batch != "dynamic":
        detail += f"; fixed batch {report.batch}"
    if convert:
        try:
            conv = convert_net(net, workdir / "net.py", safetensors=False)
            from caffe2torch.export.deploy import deploy_view
            from caffe2torch.export.onnx import sample_inputs

            view = deploy_view(net, batch=1).net.eval()  # any batch runs: the smallest
            feeds = sample_inputs(view)
            with torch.no_grad():
                want = view(*feeds, blobs=conv.outputs)
            got = _run_generated(workdir / "net.py", feeds)
            for k in conv.outputs:
                scale = float(want[k].abs().max()) if want[k].numel() else 0.0
                diff = float((want[k] - got[k]).abs().max()) if want[k].numel() else 0.0
                if not diff <= RTOL * scale + ATOL:
                    return Row(rel, "convert-fail", f"{k} differs by {diff:.3g}",
                               time.perf_counter() - start)
            detail += "; standalone ok"
        except CaffeError as err:
            return Row(rel, "convert-fail", err.message[:200], time.perf_counter() - start)
    return Row(rel, "ok", detail, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    ap.add_argument("--only", help="only paths containing this text")
    ap.add_argument("--no-convert", action="store_true", help="ONNX only")
    ap.add_argument("--forks", action="store_true",
                    help="also nets with fork layer types (every registered type)")
    args = ap.parse_args(argv)
    if not (args.corpus / "MANIFEST.tsv").exists():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    bvlc = bvlc_types()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in candidates(args.corpus, args.only):
            row = check(path, bvlc, not args.no_convert, Path(tmp), args.forks)
            row.path = str(path.relative_to(args.corpus))
            rows.append(row)
            print(f"{row.status:<18} {row.seconds:6.1f}s  {row.path}  {row.detail}", flush=True)
    tested = [r for r in rows if not r.status.startswith("skip")]
    ok = sum(r.status == "ok" for r in tested)
    onnx_ok = sum(r.status in ("ok", "convert-fail") for r in tested)
    fixed = [r for r in tested if "fixed batch" in r.detail]
    print()
    kind = "deploy nets of registered layers" if args.forks else "BVLC-layer deploy nets"
    print(f"net files: {len(rows)}; {kind}: {len(tested)}")
    print(f"  ONNX exported and verified by onnxruntime: {onnx_ok}/{len(tested)}")
    print(f"  of them with a fixed batch (the net fixes it): {len(fixed)}")
    if not args.no_convert:
        print(f"  standalone .py reproduces too:             {ok}/{len(tested)}")
    skips: dict[str, int] = {}
    for r in rows:
        if r.status.startswith("skip"):
            skips[r.status] = skips.get(r.status, 0) + 1
    for k, v in sorted(skips.items()):
        print(f"  {k}: {v}")
    return 0 if ok == len(tested) else 1


if __name__ == "__main__":
    sys.exit(main())
