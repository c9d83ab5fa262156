"""One report for every net of the corpus (../shared/corpus): per file and phase, does it
parse, build, run a forward, and export to ONNX (checked by onnxruntime)? Each failure
gives its reason. Writes docs/corpus_report.md (summary counts and the table).

    python tools/corpus_report.py [--corpus DIR] [--only SUBSTRING] [--no-onnx] [--out MD]

Stages, in order (a stage runs only when the one before it passed):

* parse: the text prototxt (V0/V1/V2) or the binary net (.caffemodel) reads and upgrades.
* build: the net builds for the phase (both phases for a train_test net, TEST for a deploy
  net). Data layers whose top shapes come from their data files get shapes derived from
  the prototxt when it tells them (see ``derive_shapes``); the row then says "derived".
* forward: the net runs on random inputs at batch 2 (tests/corpus/test_corpus_build.py's feed).
* onnx: the TEST phase's deploy view exports with random weights and onnxruntime
  reproduces every output (tools/corpus_export.py's weights and tolerance).

Outcomes: ok, derived (built with derived input shapes), fail (a reason follows), skip (a
reason: a Python layer whose module is not here, shapes no file tells, a layer type that
is not registered), refused (Caffe itself refuses the net the same way: a bottom that no
layer of that phase produces), "-" (not reached).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import caffe2torch as c2t  # noqa: E402
from caffe2torch.errors import BuildError, CaffeError  # noqa: E402
from caffe2torch.export.onnx import NOT_EXPRESSIBLE, export_onnx  # noqa: E402
from caffe2torch.io import read_caffemodel  # noqa: E402
from caffe2torch.ir import NetState, declared_phases, filter_layers  # noqa: E402
from caffe2torch.layers.registry import find_layer_spec  # noqa: E402
from tests.corpus.test_corpus_build import random_inputs, small_batch_shapes  # noqa: E402
from tools.corpus_export import ATOL, RTOL, bvlc_types, fill_random  # noqa: E402

TEXT_FORMATS = {"V0", "V1", "V2"}
BINARY_FORMATS = {"V1-binary", "V2-binary"}
SHAPES_FROM_DATA = "cannot be computed from the prototxt"
BATCH = 2

# Fork layers a trace cannot carry into ONNX, beside export/onnx.py's NOT_EXPRESSIBLE: their
# result depends on values read outside the trace, or on state that changes every forward.
NOT_TRACEABLE = {
    "YoloDetectionOutput": "its non-maximum suppression keeps a value-dependent number of boxes",
    "DetectionEvaluate": "its row count depends on the detections and the ground truth",
    "BoxAnnotatorOHEM": "it sorts ROIs by their loss values",
    "ROIPooling": "its bins come from the ROI values (read outside the trace)",
    "PSROIPooling": "its bins come from the ROI values (read outside the trace)",
    "MarginInnerProduct": "its lambda anneals with a forward counter kept in the layer",
}


@dataclass
class PhaseRow:
    """One (file, phase) line of the report."""

    path: str
    phase: str
    parse: str = "ok"
    build: str = "-"
    forward: str = "-"
    onnx: str = "-"
    reason: str = ""
    family: str = "BVLC"  # "BVLC", "fork", "unregistered", or "unknown" (unparsed)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return "fail" not in (self.parse, self.build, self.forward, self.onnx)


# ------------------------------------------------------------------------------ reading


def manifest_nets(corpus: Path, only: str | None = None) -> list[tuple[str, str]]:
    """(relative path, format) of every net file of MANIFEST.tsv (text or binary)."""
    with (corpus / "MANIFEST.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        (r["path"], r["format"])
        for r in rows
        if r["format"] in TEXT_FORMATS | BINARY_FORMATS and (only is None or only in r["path"])
    ]


def read_any(path: Path, fmt: str) -> Any:
    """The upgraded NetParameter of a text or binary net file (blobs dropped)."""
    if fmt in BINARY_FORMATS:
        param = read_caffemodel(path)
        for layer in param.layer:
            del layer.blobs[:]
        return param
    return c2t.read_net(path)


def first_line(err: BaseException, limit: int = 200) -> str:
    text = err.message if isinstance(err, CaffeError) else f"{type(err).__name__}: {err}"
    return " ".join(str(text).split())[:limit]


def family_of(types: Iterable[str], bvlc: set[str]) -> tuple[str, list[str]]:
    """"BVLC" when every type is BVLC's, "fork" when all are registered, else
    "unregistered" with the unknown types."""
    types = set(types)
    unknown = sorted(t for t in types if find_layer_spec(t) is None)
    if unknown:
        return "unregistered", unknown
    return ("BVLC" if types <= bvlc else "fork"), []


# ------------------------------------------------------------------------- input shapes


def _declared_inputs(param: Any) -> dict[str, tuple[int, ...]]:
    """{top: shape} of the Input layers of ``param`` (net-level inputs are upgraded to
    Input layers)."""
    out: dict[str, tuple[int, ...]] = {}
    for layer in param.layer:
        if layer.type != "Input":
            continue
        shapes = [tuple(int(d) for d in s.dim) for s in layer.input_param.shape]
        for k, top in enumerate(layer.top):
            if shapes:
                out[top] = shapes[k] if k < len(shapes) else shapes[0]
    return out


def sibling_inputs(path: Path, cache: dict[Path, dict[str, tuple[int, ...]]]) -> dict:
    """{top: shape} declared by the deploy nets beside ``path`` (same folder)."""
    folder = path.parent
    if folder not in cache:
        found: dict[str, tuple[int, ...]] = {}
        for other in sorted(folder.glob("*.prototxt")) + sorted(folder.glob("*.pt")):
            if other == path:
                continue
            try:
                found.update({k: v for k, v in _declared_inputs(c2t.read_net(other)).items()
                              if k not in found})
            except CaffeError:
                continue
        cache[folder] = found
    return cache[folder]


def _batch_of(layer: Any) -> int:
    for name in ("data_param", "image_data_param", "hdf5_data_param", "window_data_param",
                 "memory_data_param"):
        if layer.HasField(name) and getattr(layer, name).batch_size:
            return int(getattr(layer, name).batch_size)
    return BATCH


def _image_shape(layer: Any, sibling: tuple[int, ...] | None) -> tuple[list, str]:
    """[C, H, W] of a data layer's first top (None where unknown) and where they came from."""
    chw: list[int | None] = [None, None, None]
    how = []
    if sibling is not None and len(sibling) == 4:
        chw = list(sibling[1:])
        how.append("deploy net beside it")
    t = layer.transform_param if layer.HasField("transform_param") else None
    if t is not None and len(t.mean_value) > 1 and chw[0] is None:
        chw[0] = len(t.mean_value)  # Caffe checks mean_value count == channels
        how.append("mean_value count")
    if layer.type == "ImageData" and chw[0] is None:
        chw[0] = 3 if layer.image_data_param.is_color else 1
        how.append("is_color")
    if t is not None and t.crop_size:
        chw[1] = chw[2] = int(t.crop_size)
        how.append("crop_size")
    elif t is not None and t.HasField("resize_param") and t.resize_param.height:
        chw[1], chw[2] = int(t.resize_param.height), int(t.resize_param.width)
        how.append("resize_param")
    elif layer.type == "ImageData" and layer.image_data_param.new_height:
        p = layer.image_data_param
        chw[1], chw[2] = int(p.new_height), int(p.new_width)
        how.append("new_height/new_width")
    return chw, ", ".join(how)


def derive_shapes(
    param: Any, phase: str, path: Path, cache: dict
) -> tuple[dict[str, tuple[int, ...]] | None, str]:
    """Input shapes for the data layers of ``phase`` that the prototxt (or a deploy net in
    the same folder) tells: image tops (N, C, H, W), label tops (N,) for the layers whose
    labels are one number per item. None with the reason when some shape stays unknown."""
    layers = [param.layer[i] for i in filter_layers(param.layer, NetState.of(phase))]
    siblings = sibling_inputs(path, cache)
    shapes: dict[str, tuple[int, ...]] = {}
    sources = set()
    for layer in layers:
        spec = find_layer_spec(layer.type)
        if spec is None or not spec.data or spec.type == "Input" or not layer.top:
            continue
        batch = _batch_of(layer)
        chw, how = _image_shape(layer, siblings.get(layer.top[0]))
        if None in chw:
            return None, (
                f"layer '{layer.name}' ({layer.type}) takes its shapes from its data files "
                "and neither the prototxt nor a deploy net beside it gives them"
            )
        shapes[layer.top[0]] = (batch, *chw)
        sources.add(how)
        if spec.type == "AnnotatedData":
            continue  # its label top has the fork's set-up shape (1, 1, 1, 8)
        for top in layer.top[1:]:
            if spec.type not in ("Data", "ImageData", "WindowData", "MemoryData"):
                return None, f"layer '{layer.name}' ({layer.type}): the shape of top " \
                             f"'{top}' comes from its data files"
            shapes[top] = (batch,)
    return shapes, "; ".join(sorted(sources))


# ---------------------------------------------------------------------------- the stages


def classify_build_error(err: BuildError) -> tuple[str, str]:
    text = first_line(err)
    if "Python layers are refused" in text:
        return "skip", "Python layer: its module is not part of the corpus"
    if "unknown bottom blob" in text.lower():
        return "refused", text
    return "fail", text


def build_phase(row: PhaseRow, param: Any, path: Path, cache: dict) -> c2t.CaffeNet | None:
    """The net at batch 2 for ``row.phase``, or None with the row's build column set."""
    shapes: dict[str, tuple[int, ...]] | None = None
    try:
        net = c2t.load_net(param, phase=row.phase)
    except BuildError as err:
        if SHAPES_FROM_DATA not in str(err):
            row.build, row.reason = classify_build_error(err)
            return None
        shapes, how = derive_shapes(param, row.phase, path, cache)
        if shapes is None:
            row.build, row.reason = "skip", how
            return None
        try:
            net = c2t.load_net(param, phase=row.phase, input_shapes=shapes)
        except BuildError as err2:
            row.build, row.reason = classify_build_error(err2)
            return None
        row.notes.append(f"input shapes from {how}")
    except CaffeError as err:
        row.build, row.reason = "fail", first_line(err)
        return None
    row.build = "derived" if shapes is not None else "ok"
    try:
        return c2t.load_net(param, phase=row.phase, input_shapes=small_batch_shapes(net, BATCH))
    except CaffeError:
        # Some layers need whole groups of items (TripletLoss sets): keep the full batch.
        row.notes.append(f"run at the full batch (batch {BATCH} does not build)")
        return net


def feed_for(net: c2t.CaffeNet) -> dict[str, torch.Tensor]:
    """Random images, zero labels (tests/corpus/test_corpus_build.py); an AnnotatedData label is
    the fork's row of -1 for a batch without boxes (a zero row would be a background box,
    which SSD's layers refuse)."""
    feed = random_inputs(net)
    for layer in net.ir.data_layers():
        if layer.type == "AnnotatedData":
            for top in layer.tops[1:]:
                feed[top.name] = torch.full_like(feed[top.name], -1.0)
    return feed


def run_forward(row: PhaseRow, net: c2t.CaffeNet) -> bool:
    try:
        with torch.no_grad():
            out = net(feed_for(net))
    except Exception as exc:  # a layer crashing at run time is a finding to report
        row.forward, row.reason = "fail", first_line(exc)
        return False
    missing = sorted(set(net.outputs) - set(out))
    if missing:
        row.forward, row.reason = "fail", f"outputs missing: {missing}"
        return False
    row.forward = "ok"
    return True


def run_onnx(row: PhaseRow, net: c2t.CaffeNet, workdir: Path) -> None:
    for layer in net.ir.layers:
        why = NOT_EXPRESSIBLE.get(layer.type) or NOT_TRACEABLE.get(layer.type)
        if why is not None:
            row.onnx, row.reason = "skip", f"layer '{layer.name}' ({layer.type}): {why}"
            return
    fill_random(net)
    try:
        report = export_onnx(net, workdir / "m.onnx", verify=True)
    except CaffeError as err:
        row.onnx, row.reason = "fail", first_line(err)
        return
    except Exception as exc:  # an exporter crash is a finding too
        row.onnx, row.reason = "fail", first_line(exc)
        return
    assert report.max_diff is not None
    bad = [k for k, d in report.max_diff.items() if not d <= RTOL * report.scale[k] + ATOL]
    if bad:
        row.onnx = "fail"
        row.reason = "onnxruntime differs: " + ", ".join(
            f"{k} by {report.max_diff[k]:.3g}" for k in bad[:3]
        )
        return
    row.onnx = "ok"


def phases_of(param: Any, fmt: str) -> list[str]:
    """The phases to build: those the net declares; for a binary net (a caffemodel holds
    the net it was saved from, already filtered) the phase that keeps every layer."""
    phases = declared_phases(param.layer)
    if fmt in BINARY_FORMATS:
        whole = [p for p in phases
                 if len(filter_layers(param.layer, NetState.of(p))) == len(param.layer)]
        return whole or phases
    return phases


def check_file(
    corpus: Path, rel: str, fmt: str, bvlc: set[str], workdir: Path, onnx: bool, cache: dict
) -> list[PhaseRow]:
    """The report rows of one corpus file (one per phase it declares)."""
    path = corpus / rel
    try:
        param = read_any(path, fmt)
    except CaffeError as err:
        return [PhaseRow(rel, "-", parse="fail", reason=first_line(err), family="unknown")]
    family, unknown = family_of((ly.type for ly in param.layer), bvlc)
    rows = []
    for phase in phases_of(param, fmt):
        row = PhaseRow(rel, phase, family=family)
        rows.append(row)
        start = time.perf_counter()
        if unknown:
            row.build, row.reason = "skip", "layer types not registered: " + ", ".join(unknown)
            continue
        net = build_phase(row, param, path, cache)
        if net is not None and run_forward(row, net) and onnx and phase == "TEST":
            run_onnx(row, net, workdir)
        row.seconds = time.perf_counter() - start
    return rows


def build_report(
    corpus: Path, only: str | None = None, onnx: bool = True, progress: bool = False
) -> list[PhaseRow]:
    bvlc = bvlc_types()
    cache: dict = {}
    rows: list[PhaseRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rel, fmt in manifest_nets(corpus, only):
            for row in check_file(corpus, rel, fmt, bvlc, Path(tmp), onnx, cache):
                rows.append(row)
                if progress:
                    print(f"{row.seconds:6.1f}s {row.parse:<4} {row.build:<7} "
                          f"{row.forward:<4} {row.onnx:<4} {rel} [{row.phase}] {row.reason}",
                          flush=True)
    return rows


# ---------------------------------------------------------------------------- rendering


def summary(rows: Sequence[PhaseRow]) -> list[str]:
    files = {r.path for r in rows}
    lines = [
        f"- net files: {len(files)}; (file, phase) rows: {len(rows)}",
        f"- parse: {sum(r.parse == 'ok' for r in rows)} rows ok, "
        f"{sum(r.parse == 'fail' for r in rows)} failed",
    ]
    for stage in ("build", "forward", "onnx"):
        counts = Counter(getattr(r, stage) for r in rows)
        parts = ", ".join(f"{k} {counts[k]}" for k in
                          ("ok", "derived", "fail", "skip", "refused", "-") if counts[k])
        lines.append(f"- {stage}: {parts}")
    fams = Counter(r.family for r in rows if r.parse == "ok")
    lines.append("- rows by layer family: " + ", ".join(f"{k} {v}" for k, v in sorted(
        fams.items())))
    failing = [r for r in rows if not r.ok and r.family in ("BVLC", "fork")]
    lines.append(f"- failures among nets of registered layers: {len(failing)}")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(rows: Sequence[PhaseRow]) -> str:
    out = [
        "# Corpus report",
        "",
        "Every net file of the corpus (`../shared/corpus`, MANIFEST.tsv), per phase: does",
        "it parse, build, run a forward at batch 2 on random inputs, and export to ONNX",
        "(TEST phase, random weights, checked by onnxruntime)? Made by",
        "`python tools/corpus_report.py`; the stages and outcomes are described in that",
        "script's docstring.",
        "",
        "## Summary",
        "",
        *summary(rows),
        "",
        "## Table",
        "",
        "| file | phase | layers | parse | build | forward | onnx | reason / note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        note = r.reason or "; ".join(r.notes)
        out.append(
            f"| {_cell(r.path)} | {r.phase} | {r.family} | {r.parse} | {r.build} | "
            f"{r.forward} | {r.onnx} | {_cell(note)} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    ap.add_argument("--only", help="only paths containing this text")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX stage")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "corpus_report.md")
    args = ap.parse_args(argv)
    if not (args.corpus / "MANIFEST.tsv").exists():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    rows = build_report(args.corpus, args.only, onnx=not args.no_onnx, progress=True)
    args.out.write_text(render(rows))
    print("\n".join(summary(rows)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
