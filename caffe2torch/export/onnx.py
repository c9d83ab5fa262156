"""ONNX export of a net's deploy view, checked by onnx.checker and, on request, by
onnxruntime against PyTorch.

The exporter is torch.onnx's TorchScript one (``dynamo=False``): it traces the plain
module the builder made (layers with custom gradients fall back to plain ops under
``torch.no_grad()``), keeps the batch axis symbolic, and names every node by its module
scope, which maps straight back to the Caffe layer. The torch.export-based exporter is
used with ``exporter="dynamo"`` (it needs the onnxscript package).

Names (see onnx_names): initializers are ``<layer>.<blob>`` (``conv1.weight``), nodes
carry the Caffe layer names, graph inputs and outputs the Caffe blob names.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from caffe2torch.errors import BuildError, CaffeError, ExportError, WriteError
from caffe2torch.export.batch_free import batch_fixers, make_batch_free
from caffe2torch.export.deploy import DeployView, deploy_view, reset_states
from caffe2torch.export.fold_bn import fold_batch_norm
from caffe2torch.export.onnx_names import caffe_names
from caffe2torch.export.simplify import simplify_model
from caffe2torch.export.static import freeze_static_sizes
from caffe2torch.export.verify import VerifyResult, data_like_inputs, verify_export
from caffe2torch.graph import CaffeNet

# Opsets the exporter writes and the tests check (each on the golden nets). The
# TorchScript tracer writes up to TRACER_MAX_OPSET; above it, onnx's version converter
# lifts the file. The default is the highest of them that onnxruntime here runs.
OPSETS = range(11, 22)
TRACER_MAX_OPSET = 20
DEFAULT_OPSET = 21
BATCH_AXIS = "batch"

# Layer types whose result the trace cannot carry into ONNX faithfully: why, per type.
NOT_EXPRESSIBLE = {
    "Python": "it runs arbitrary Python code",
    "Filter": "its output size depends on the values of its selector bottom",
    "HDF5Output": "it writes a file instead of computing a top",
    "BatchReindex": "it gathers rows by the values of a bottom into a value-dependent size",
    "MarginInnerProduct": "its lambda follows an iteration counter that moves every forward",
    "AdaCosAddmScale": "its scale is updated from the previous forward's logits",
    "DetectionEvaluate": "it matches detections with ground truth outside the traced graph",
    "BoxAnnotatorOHEM": "it picks hard examples by value outside the traced graph",
}


@dataclass
class ExportReport:
    """What export_onnx wrote: the path, the graph's inputs and outputs, the layers left
    out of the deploy view, and (after a check) the largest difference per output."""

    path: str
    opset: int
    inputs: list[str]
    outputs: list[str]
    dropped: list[str] = field(default_factory=list)
    max_diff: dict[str, float] | None = None
    scale: dict[str, float] = field(default_factory=dict)  # max |PyTorch output| per output
    warnings: list[str] = field(default_factory=list)
    verify: VerifyResult | None = None
    notes: list[str] = field(default_factory=list)  # what the export changed or decided
    batch: int | str = "dynamic"  # what the file takes: a symbolic batch or a fixed size
    nodes: int = 0  # ONNX nodes in the file
    folded: list[str] = field(default_factory=list)  # layers folded away by fold_bn

    @property
    def worst(self) -> float:
        return max(self.max_diff.values(), default=0.0) if self.max_diff else 0.0


class _Outputs(nn.Module):
    """A CaffeNet as a function of positional inputs returning the chosen blobs in order
    (what a tracer wants)."""

    def __init__(self, net: CaffeNet, outputs: Sequence[str]) -> None:
        super().__init__()
        self.net = net
        self.names = list(outputs)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        extra = [n for n in self.names if n not in self.net.outputs]
        out = self.net(*inputs, blobs=extra or None)
        return tuple(out[n] for n in self.names)


def _as_net(net: Any, weights: Any, phase: str, input_shapes: Any) -> tuple[CaffeNet, list[str]]:
    """The net to export and a note per layer left out because its inputs are absent."""
    if isinstance(net, CaffeNet):
        if weights is not None:
            net.copy_from(weights)
        return net, []
    return load_for_export(net, weights=weights, phase=phase, input_shapes=input_shapes)


def load_for_export(path: Any, **kwargs: Any) -> tuple[CaffeNet, list[str]]:
    """load_net for export: TEST-only and scoring layers whose inputs the file does not
    have are left out (see prune); returns (net, a note per layer left out)."""
    from caffe2torch.export.prune import prune_unfed
    from caffe2torch.graph import load_net
    from caffe2torch.io import read_net
    from caffe2torch.ir import NetState

    state = NetState.of(kwargs.get("phase", "TEST"), kwargs.get("level", 0),
                        kwargs.get("stages", ()))
    pruned, notes = prune_unfed(read_net(path, kwargs.get("proto")), state)
    if not notes:
        return load_net(path, **kwargs), []
    return load_net(pruned, **kwargs), [f"left out {n}" for n in notes]


def _check_expressible(view: DeployView) -> None:
    for layer in view.net.ir.layers:
        why = NOT_EXPRESSIBLE.get(layer.type)
        if why is not None:
            raise ExportError(
                f"layer '{layer.name}' ({layer.type}) cannot be exported to ONNX: {why}",
                hint="export the part before it with --outputs BLOB (the blob it reads), and "
                "run this layer outside the ONNX model",
            )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The TorchScript tracer warns about shapes it records as constants (H and W are
    fixed in a Caffe net: only the batch axis is left symbolic) and about itself."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")  # and a failed export's IR dump: the error says it
        yield


def sample_inputs(net: CaffeNet, batch: int | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Random inputs of the net's input shapes (batch replaced when given): uniform in
    [-1, 1), or small non-negative integers for inputs that index (Embed)."""
    return data_like_inputs(net, batch, seed, _index_inputs(net), images=False)


def _index_inputs(net: CaffeNet) -> dict[str, int]:
    """Inputs read by an Embed layer, with the vocabulary size."""
    found = {}
    for layer in net.ir.layers:
        if layer.type == "Embed" and layer.bottoms and layer.bottoms[0].name in net.inputs:
            found[layer.bottoms[0].name] = int(layer.proto.embed_param.input_dim)
    return found


def _torch_export(
    module: nn.Module, args: tuple[torch.Tensor, ...], target: Any, input_names: list[str],
    output_names: list[str], opset: int, dynamic: dict[str, dict[int, str]] | None,
    exporter: str,
) -> None:
    with _quiet(), torch.no_grad():
        if exporter == "dynamo":
            dims = None
            if dynamic:
                batch = torch.export.Dim("batch")
                dims = tuple({0: batch} if n in dynamic else None for n in input_names)
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=opset, input_names=input_names,
                output_names=output_names, dynamic_shapes=dims,
            )
            assert program is not None
            program.save(target)
            return
        torch.onnx.export(
            module, args, target, dynamo=False, opset_version=opset,
            input_names=input_names, output_names=output_names,
            dynamic_axes=dynamic or None, do_constant_folding=True,
        )


def onnx_detection_heads(net: CaffeNet, trt_nms: bool = False) -> tuple[list[str], list[str]]:
    """Replace each DetectionOutput, YoloDetectionOutput, ROIPooling and PSROIPooling by
    its standard-ONNX form (in place), or DetectionOutput by TensorRT's BatchedNMS_TRT
    node (``trt_nms``); returns the tops whose row count follows the values, and the
    DetectionOutput tops that BatchedNMS_TRT nodes compute."""
    from caffe2torch.export.detection import (
        OnnxPSROIPooling,
        OnnxROIPooling,
        onnx_detection_output,
    )
    from caffe2torch.export.static import replace_module
    from caffe2torch.export.trt_nms import trt_detection_output
    from caffe2torch.export.yolo import OnnxYoloDetectionOutput
    from caffe2torch.layers.forks.detection import (
        CaffePSROIPooling,
        CaffeROIPooling,
        CaffeYoloDetectionOutput,
    )
    from caffe2torch.layers.forks.ssd import CaffeDetectionOutput

    rows: list[str] = []
    plugin: list[str] = []
    shapes = net._version_shapes
    for pos, (layer, module) in enumerate(zip(net.ir.layers, net._modules_in_order)):
        if isinstance(module, CaffeROIPooling):
            replace_module(net, pos, OnnxROIPooling(module))  # rows follow the rois input
        if isinstance(module, CaffePSROIPooling):
            replace_module(net, pos, OnnxPSROIPooling(module))
        if isinstance(module, CaffeYoloDetectionOutput):
            replace_module(net, pos, OnnxYoloDetectionOutput(module))
            rows += [t.name for t in layer.tops]
        if isinstance(module, CaffeDetectionOutput):
            prior = tuple(shapes[layer.bottoms[2]])
            make = trt_detection_output if trt_nms else onnx_detection_output
            replace_module(net, pos, make(layer, module, prior))
            (plugin if trt_nms else rows).extend(t.name for t in layer.tops)
    return rows, plugin


def check_opset(opset: int) -> None:
    if opset not in OPSETS:
        raise ExportError(
            f"opset {opset} is not supported: choose {OPSETS.start}..{OPSETS.stop - 1}",
            hint=f"the default, {DEFAULT_OPSET}, runs in onnxruntime",
        )


def _convert_opset(model: Any, opset: int) -> Any:
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, opset)
    except Exception as exc:
        raise ExportError(
            f"the model cannot be converted to opset {opset}: {_first_line(exc)}",
            hint=f"export with --opset {TRACER_MAX_OPSET}",
        ) from exc


def _source_batch(source: CaffeNet, outputs: Sequence[str] | None, branches: list[str],
                  keep_losses: bool) -> int:
    """The batch size of the net as its prototxt builds it (first input's first axis)."""
    from caffe2torch.export.deploy import plan_view

    inputs = plan_view(source, outputs, branches, keep_losses)[0]
    shape = source._version_shapes[inputs[0]] if inputs else ()
    return int(shape[0]) if shape else 1


def _dynamic_axes(
    source: CaffeNet, view: DeployView, outputs: Sequence[str] | None, branches: list[str],
    keep_losses: bool,
) -> tuple[dict[str, dict[int, str]] | None, str]:
    """The symbolic axes of the inputs and outputs (an input's batch axis, and each output
    axis whose size follows the batch), or (None, why) for a net that runs at one batch
    size only. The net is built a second time at another batch to see which sizes move."""
    fixers = batch_fixers(view.net)
    if fixers:
        return None, "; ".join(fixers)
    why = ""
    try:
        other = deploy_view(source, outputs, branches, keep_losses, batch=3, shared=True)
    except CaffeError as err:  # e.g. a Slice into equal parts along the batch: even only
        why = err.message
        try:
            other = deploy_view(source, outputs, branches, keep_losses, batch=4, shared=True)
        except CaffeError:
            return None, f"at another batch size the net does not build ({why})"
        why = f"the batch is symbolic but not every size works: at batch 3, {why}"
    axes: dict[str, dict[int, str]] = {name: {0: BATCH_AXIS} for name in view.inputs}
    here, there = view.net.blob_shapes, other.net.blob_shapes
    for name in view.outputs:
        a, b = tuple(here[name]), tuple(there[name])
        moved = {i: (BATCH_AXIS if i == 0 else f"{name}_{i}")
                 for i, (u, v) in enumerate(zip(a, b)) if u != v}
        if moved:
            axes[name] = moved
    return axes, why


def _find_culprit(view: DeployView, opset: int, cause: BaseException) -> CaffeError:
    """Export each layer alone to name the one ONNX cannot express."""
    net = view.net
    shapes = net._version_shapes
    for pos, layer in enumerate(net.ir.layers):
        if layer.is_data:
            continue
        module = net._modules_in_order[pos]
        args = tuple(torch.rand(shapes[b]) for b in layer.bottoms)
        try:
            _torch_export(module, args, io.BytesIO(), [f"in{i}" for i in range(len(args))],
                          [], min(opset, TRACER_MAX_OPSET), None, "torchscript")
        except Exception as exc:  # the first layer that fails alone is the one to name
            return ExportError(
                f"layer '{layer.name}' ({layer.type}) cannot be exported to ONNX (opset "
                f"{opset}): {_first_line(exc)}",
                hint="try a newer --opset, or export the part before it with --outputs BLOB",
            )
    scope = re.search(r"scope: [^#\n]*::(\w+)\s*#", str(cause))
    by_attr = {attr: name for name, attr in net.layer_attrs.items()}
    if scope and scope.group(1) in by_attr:
        layer = net.ir.layer(by_attr[scope.group(1)])
        return ExportError(
            f"layer '{layer.name}' ({layer.type}) cannot be exported to ONNX (opset {opset}): "
            f"{_first_line(cause)}",
            hint="try a newer --opset, or export the part before it with --outputs BLOB",
        )
    return ExportError(f"ONNX export failed: {_first_line(cause)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


def export_onnx(
    net: CaffeNet | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    weights: Any = None,
    opset: int = DEFAULT_OPSET,
    batch: int | str = "dynamic",
    outputs: Sequence[str] | None = None,
    branch: Sequence[str] | str | None = None,
    keep_losses: bool = False,
    verify: bool = False,
    phase: str = "TEST",
    input_shapes: Any = None,
    exporter: str = "torchscript",
    verify_batches: Sequence[int] | None = None,
    from_fillers: bool = False,
    fold_bn: bool = False,
    simplify: bool = False,
    half: bool = False,
    trt_nms: bool = False,
) -> ExportReport:
    """Write the deploy view of ``net`` (a CaffeNet or a prototxt path) as ONNX.

    ``batch``: "dynamic" (a symbolic batch axis) or a fixed size. ``outputs``: blob names
    (default: the deploy outputs). ``branch``: blob name(s) to start from (one tower of a
    Siamese net). ``keep_losses``: keep loss and Accuracy layers. Raises ExportError
    naming the layer ONNX cannot express.

    ``verify``: onnxruntime against PyTorch at batch 1 and 3 (``verify_batches``) on
    data-like inputs, the result in ``report.verify``; ``from_fillers``: the weights are
    the fillers' (a warning). ``fold_bn``: BatchNorm and Scale folded into the layer
    before them. ``simplify``: constant folding and graph simplification. ``half``:
    float16 weights and activations. ``opset``: 11..21. ``trt_nms``: each DetectionOutput
    as one ``TRT::BatchedNMS_TRT`` node (TensorRT's plugin; see trt_nms), whose four
    outputs replace its top; onnxruntime cannot run it, so ``verify`` is skipped (a note).
    """
    import onnx

    source, pruned = _as_net(net, weights, phase, input_shapes)
    dynamic = batch == "dynamic"
    if not dynamic:
        try:
            fixed = int(batch)
        except (TypeError, ValueError):
            raise ExportError(
                f"batch must be 'dynamic' or a positive integer, not {batch!r}"
            ) from None
        if fixed <= 0:
            raise ExportError(f"batch must be a positive integer, not {fixed}")
    check_opset(opset)
    if trt_nms and simplify:
        raise ExportError("--simplify runs the model in onnxruntime (or onnxsim), which "
                          "cannot load TensorRT's BatchedNMS_TRT node of --trt-nms",
                          hint="leave out one of --simplify and --trt-nms")
    branches = [branch] if isinstance(branch, str) else list(branch or [])
    notes: list[str] = list(pruned)
    axes = None
    even_only = False
    if dynamic:
        trace_batch = 2
        try:
            view = deploy_view(source, outputs, branches, keep_losses, batch=trace_batch)
        except BuildError as err:  # a shape that holds at the prototxt's batch only
            axes, why = None, f"at batch {trace_batch} the net does not build ({err.message})"
        else:
            axes, why = _dynamic_axes(source, view, outputs, branches, keep_losses)
        if axes is not None and why:
            notes.append(why)
            even_only = True
        if axes is None:  # the net runs at one batch size: export that one and say so
            dynamic = False
            fixed = _source_batch(source, outputs, branches, keep_losses)
            notes.append(f"exported with a fixed batch of {fixed}: {why}")
            trace_batch = fixed
            view = deploy_view(source, outputs, branches, keep_losses, batch=fixed)
    else:
        trace_batch = fixed
        view = deploy_view(source, outputs, branches, keep_losses, batch=fixed)
    _check_expressible(view)
    deploy = view.net.eval()
    freeze_static_sizes(deploy)
    make_batch_free(deploy)
    detections, plugin_tops = onnx_detection_heads(deploy, trt_nms)
    if detections:  # the row count follows the values: an axis of its own
        axes = dict(axes or {})
        for name in (n for n in view.outputs if n in detections):
            axes[name] = {**axes.get(name, {}), 2: f"{name}_rows"}
    folded = fold_batch_norm(deploy, view.outputs) if fold_bn else []
    reset_states(deploy)
    module = _Outputs(deploy, view.outputs).eval()
    args = tuple(sample_inputs(deploy))
    if half:
        module = module.half()
        args = tuple(a.half() for a in args)
    buffer = io.BytesIO()
    try:
        _torch_export(module, args, buffer, view.inputs, view.outputs,
                      min(opset, TRACER_MAX_OPSET), axes, exporter)
    except CaffeError:
        raise
    except Exception as exc:
        culprit = _find_culprit(view, opset, exc)
        if dynamic:  # the tracer can lose static sizes behind a symbolic batch axis
            culprit.hint = (culprit.hint or "") + "; or fix the batch size (--batch 1, batch=1)"
        raise culprit from exc
    model = onnx.load_from_string(buffer.getvalue())
    caffe_names(model, module, deploy)
    if opset > TRACER_MAX_OPSET:
        model = _convert_opset(model, opset)
    plugin_outputs: list[str] = []
    if plugin_tops:
        from caffe2torch.export.trt_nms import expose_plugin_outputs

        tops = [n for n in view.outputs if n in plugin_tops]
        plugin_outputs = expose_plugin_outputs(
            model, tops, BATCH_AXIS if dynamic else trace_batch)
        notes.append(f"DetectionOutput as TensorRT's BatchedNMS_TRT: outputs "
                     f"{', '.join(plugin_outputs)}")
    nodes_before = len(model.graph.node)
    if simplify:
        model, how = simplify_model(model)
        notes.append(f"simplified with {how}: {nodes_before} -> {len(model.graph.node)} nodes")
    model.graph.name = source.name or "caffe_net"
    model.doc_string = f"Caffe net '{source.name}' ({source.phase} phase, deploy view)"
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported model fails onnx.checker: {_first_line(exc)}") from exc
    out_path = os.fspath(path)
    try:
        onnx.save(model, out_path)
    except OSError as exc:
        raise WriteError(f"cannot write {out_path}: {exc.strerror or exc}", path=out_path) from exc
    # an input read only for its shape (PriorBox's image) is not a graph input
    graph_inputs = [i.name for i in model.graph.input]
    used = [n for n in view.inputs if n in graph_inputs]
    outs = [o.name for o in model.graph.output] if plugin_outputs else list(view.outputs)
    report = ExportReport(out_path, opset, used, outs, view.dropped)
    report.notes = notes
    report.nodes = len(model.graph.node)
    report.folded = folded
    report.batch = "dynamic" if dynamic else trace_batch
    if verify and plugin_outputs:
        notes.append("--verify skipped: onnxruntime cannot run TensorRT's BatchedNMS_TRT "
                     "(the file runs in TensorRT with its plugins); export without "
                     "--trt-nms to verify the rest of the net")
    elif verify:
        default = ([2, 4] if even_only else [1, 3]) if dynamic else [trace_batch] * 2
        batches = list(verify_batches or default)
        reference = deploy
        # checked against the net as it was, in float32
        if fold_bn or half or detections or plugin_tops:
            reference = deploy_view(source, outputs, branches, keep_losses,
                                    batch=trace_batch, shared=True).net.eval()
        report.verify = verify_export(
            out_path, reference, view.outputs, batches, from_fillers=from_fillers,
            index_inputs=_index_inputs(deploy), half=half,
        )
        report.max_diff = {k: a for k, (a, _) in report.verify.worst().items()}
        report.scale = {k: s for k, (_, s) in report.verify.worst().items()}
        report.warnings += report.verify.warnings
    return report


def run_onnx(path: str | os.PathLike[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The model's outputs for ``feeds`` under onnxruntime (CPU)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(
        os.fspath(path), opts, providers=["CPUExecutionProvider"]
    )
    # an input the net reads only for its shape (PriorBox's image) is not a graph input
    wanted = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in wanted})


def verify_onnx(
    path: str | os.PathLike[str], net: CaffeNet, outputs: Sequence[str], batch: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Largest |onnxruntime - PyTorch| per output on random inputs (inf on a shape
    mismatch; NaN in both places counts as equal)."""
    return {k: d for k, (d, _) in compare_onnx(path, net, outputs, batch, seed).items()}


def compare_onnx(
    path: str | os.PathLike[str], net: CaffeNet, outputs: Sequence[str], batch: int | None = None,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Per output: (largest |onnxruntime - PyTorch|, largest |PyTorch|) on random inputs."""
    inputs = sample_inputs(net, batch, seed)
    reset_states(net)
    with torch.no_grad():
        expected = _Outputs(net, outputs).eval()(*inputs)
    reset_states(net)
    got = run_onnx(path, {n: t.numpy() for n, t in zip(net.inputs, inputs)})
    out = {}
    for name, want, have in zip(outputs, expected, got):
        want_np = want.detach().float().numpy()
        have_np = np.asarray(have, dtype=np.float32)
        finite = np.abs(want_np[np.isfinite(want_np)])
        scale = float(finite.max()) if finite.size else 0.0
        if want_np.shape != have_np.shape:
            out[name] = (float("inf"), scale)
            continue
        both_nan = np.isnan(want_np) & np.isnan(have_np)
        same_inf = np.isinf(want_np) & (want_np == have_np)
        delta = np.where(both_nan | same_inf, 0.0, np.abs(want_np - have_np))
        diff = float(np.nan_to_num(delta, nan=np.inf).max()) if delta.size else 0.0
        out[name] = (diff, scale)
    return out
