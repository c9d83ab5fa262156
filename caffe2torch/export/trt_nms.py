"""SSD's DetectionOutput as one node for TensorRT's batched NMS plugin (``--trt-nms``).

The node is ``TRT::BatchedNMS_TRT`` (TensorRT's batchedNMSPlugin; onnx-tensorrt looks an
unknown op up by name in the plugin registry and passes its attributes as the plugin's
fields). Of TensorRT's NMS plugins it is the one whose parameters are Caffe's own:
``topK`` candidates per class before NMS and ``keepTopK`` per image after it, as
``nms_param.top_k`` and ``keep_top_k``. EfficientNMS_TRT, its successor, has no per-class
``top_k``; BatchedNMS_TRT is marked deprecated since TensorRT 10.0 but still ships.

Inputs: the boxes decoded as DetectionOutput decodes them (see detection.py), shape
(batch, priors, 1, 4) (one box shared by every class), and the class scores (batch,
priors, classes). Outputs, per image: ``num_detections`` (batch, 1) int32,
``nmsed_boxes`` (batch, keepTopK, 4), ``nmsed_scores`` (batch, keepTopK), ``nmsed_classes``
(batch, keepTopK) float, best score first. They replace the Caffe top ``T`` as the graph
outputs ``T_num_detections``, ``T_nmsed_boxes``, ``T_nmsed_scores``, ``T_nmsed_classes``.

onnxruntime has no such op: a file with this node runs only in TensorRT (with its plugin
library loaded), so ``--verify`` cannot check it.
"""

from __future__ import annotations

from typing import Any

import torch

from caffe2torch.errors import ExportError
from caffe2torch.export.detection import (
    OnnxDetectionOutput,
    _iou_matrix,
    refuse_unexportable_nms,
)

DOMAIN = "TRT"
OP = "BatchedNMS_TRT"
OUTPUTS = ("num_detections", "nmsed_boxes", "nmsed_scores", "nmsed_classes")


def plugin_attributes(spec: Any, num_priors: int) -> dict[str, Any]:
    """BatchedNMS_TRT's fields from DetectionOutput's parameters."""
    top_k = num_priors if spec.top_k < 0 else min(spec.top_k, num_priors)
    classes = spec.num_classes - (0 <= spec.background_label_id < spec.num_classes)
    # keep_top_k: -1 keeps every box NMS keeps; the plugin needs a count
    keep = top_k * classes if spec.keep_top_k < 0 else spec.keep_top_k
    return {
        "shareLocation": int(spec.share_location),
        "backgroundLabelId": int(spec.background_label_id),
        "numClasses": int(spec.num_classes),
        "topK": int(top_k),
        "keepTopK": int(keep),
        "scoreThreshold": float(spec.confidence_threshold),
        "iouThreshold": float(spec.nms_threshold),
        "isNormalized": 1,  # ApplyNMSFast's JaccardOverlap of normalized boxes (no +1)
        "clipBoxes": 0,  # DetectionOutput does not clip decoded boxes
        "scoreBits": 16,
        "caffeSemantics": 1,
        "plugin_version": "1",
    }


class _BatchedNMS(torch.autograd.Function):
    """The plugin's computation in PyTorch (what the tracer runs), its ONNX node in the
    file."""

    @staticmethod
    def forward(ctx: Any, boxes: torch.Tensor, scores: torch.Tensor,
                attrs: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        keep = attrs["keepTopK"]
        batch = boxes.shape[0]
        count = torch.zeros((batch, 1), dtype=torch.int32)
        out_boxes = torch.zeros((batch, keep, 4), dtype=boxes.dtype)
        out_scores = torch.zeros((batch, keep), dtype=scores.dtype)
        out_classes = torch.zeros((batch, keep), dtype=scores.dtype)
        for b in range(batch):
            found = _nms_per_class(boxes[b, :, 0], scores[b], attrs)
            found.sort(key=lambda f: -f[0])  # stable: class, then rank, on equal scores
            for i, (score, label, box) in enumerate(found[:keep]):
                out_scores[b, i], out_classes[b, i], out_boxes[b, i] = score, label, box
            count[b, 0] = min(len(found), keep)
        return count, out_boxes, out_scores, out_classes

    @staticmethod
    def symbolic(g: Any, boxes: Any, scores: Any, attrs: dict[str, Any]) -> Any:
        kwargs = {f"{k}_{'s' if isinstance(v, str) else 'f' if isinstance(v, float) else 'i'}": v
                  for k, v in attrs.items()}
        outs = g.op(f"{DOMAIN}::{OP}", boxes, scores, outputs=len(OUTPUTS), **kwargs)
        # the shapes and types TensorRT gives them (the tracer cannot infer a custom op's)
        keep = attrs["keepTopK"]
        base = scores.type()
        for out, sizes, dtype in zip(outs, ([None, 1], [None, keep, 4], [None, keep],
                                            [None, keep]),
                                     (torch.int32, None, None, None)):
            kind = base.with_sizes(sizes)
            out.setType(kind.with_dtype(dtype) if dtype is not None else kind)
        return outs


def _nms_per_class(boxes: torch.Tensor, scores: torch.Tensor,
                   attrs: dict[str, Any]) -> list[tuple[float, int, torch.Tensor]]:
    """(score, class, box) kept by greedy NMS of each class's topK boxes above the score
    threshold."""
    found = []
    for label in range(scores.shape[1]):
        if label == attrs["backgroundLabelId"]:
            continue
        s = scores[:, label]
        order = torch.argsort(-s, stable=True)[: attrs["topK"]]
        order = order[s[order] > attrs["scoreThreshold"]]
        over = (_iou_matrix(boxes[order]) > attrs["iouThreshold"]).tolist()
        kept: list[int] = []
        for i in range(len(order)):
            if not any(over[i][j] for j in kept):
                kept.append(i)
        found += [(float(s[order[i]]), label, boxes[order[i]]) for i in kept]
    return found


class TrtDetectionOutput(OnnxDetectionOutput):
    """DetectionOutput as decode + BatchedNMS_TRT. Its one PyTorch output packs the four
    plugin outputs (batch, keepTopK, 7) [box, score, class, count]; the exporter then makes
    the plugin's own outputs the graph outputs (expose_plugin_outputs)."""

    def forward(self, loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor,
                *unused: torch.Tensor) -> torch.Tensor:
        s, p = self.spec, self.num_priors
        scores = conf.reshape(-1, p, s.num_classes)
        # (B, P, 1, 4), in the scores' type (the decode is float32: float16 with --half)
        boxes = self._decode(loc.reshape(-1, p, 4), prior).unsqueeze(2).to(scores.dtype)
        count, nboxes, nscores, nclasses = _BatchedNMS.apply(
            boxes, scores, plugin_attributes(s, p))
        counts = count.to(nscores.dtype).unsqueeze(-1).expand(-1, nscores.shape[1], 1)
        return torch.cat([nboxes, nscores.unsqueeze(-1), nclasses.unsqueeze(-1), counts], -1)


def trt_detection_output(layer: Any, module: Any,
                         prior_shape: tuple[int, ...]) -> TrtDetectionOutput:
    """The BatchedNMS_TRT form of a built DetectionOutput, or ExportError naming what it
    lacks."""
    refuse_unexportable_nms(layer, module.spec, f"as TensorRT's {OP}")
    return TrtDetectionOutput(module.spec, int(prior_shape[-1]) // 4)


def expose_plugin_outputs(model: Any, tops: list[str], batch: int | str) -> list[str]:
    """Replace each graph output in ``tops`` by the four outputs of the BatchedNMS_TRT
    node it comes from (named ``<top>_<output>``) and drop the nodes only it used.
    Returns the new output names."""
    from onnx import TensorProto, helper

    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    names: list[str] = []
    for top in tops:
        node = _plugin_node(producer, top)
        keep = next(a.i for a in node.attribute if a.name == "keepTopK")
        renamed = [f"{top}_{o}" for o in OUTPUTS]
        for old, new in zip(node.output, renamed):
            for other in graph.node:
                other.input[:] = [new if i == old else i for i in other.input]
        node.output[:] = renamed
        pos = next(i for i, o in enumerate(graph.output) if o.name == top)
        real = graph.output[pos].type.tensor_type.elem_type  # float, or float16 (--half)
        del graph.output[pos]
        shapes = ([batch, 1], [batch, keep, 4], [batch, keep], [batch, keep])
        types = (TensorProto.INT32, real, real, real)
        for i, (name, shape, kind) in enumerate(zip(renamed, shapes, types)):
            graph.output.insert(pos + i, helper.make_tensor_value_info(name, kind, shape))
        names += renamed
    _drop_dead_nodes(graph)
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return names


def _plugin_node(producer: dict[str, Any], top: str) -> Any:
    """The BatchedNMS_TRT node upstream of graph output ``top``."""
    seen, todo = set(), [top]
    while todo:
        value = todo.pop()
        node = producer.get(value)
        if node is None or id(node) in seen:
            continue
        if node.op_type == OP:
            return node
        seen.add(id(node))
        todo += list(node.input)
    raise ExportError(f"no {OP} node feeds the output '{top}'")


def _drop_dead_nodes(graph: Any) -> None:
    needed = {o.name for o in graph.output}
    alive = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            alive.append(node)
            needed.update(i for i in node.input if i)
    kept = list(reversed(alive))
    del graph.node[:]
    graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(infos)
