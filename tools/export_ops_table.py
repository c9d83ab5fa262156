"""Which ONNX ops each Caffe layer type exports to, and whether TensorRT and OpenVINO
accept them; prints the markdown table of docs/export.md.

    python tools/export_ops_table.py [--golden DIR]

Each BVLC type is exported from the first variant of its golden layer case
(../shared/golden/layers/<Type>/), the fork types from small nets written here. The
acceptance columns come from the runtimes' published ONNX operator lists:

* TensorRT 10.0 (onnx/onnx-tensorrt docs/operators.md, June 2024; opsets 9..20): every op
  below is listed as supported except MaxRoiPool; TopK needs K < 3840; NonMaxSuppression
  and NonZero are supported since TensorRT 8.6 (8.4's list marks NonZero unsupported).
* OpenVINO (openvinotoolkit/openvino src/frontends/onnx/docs/supported_ops.md): every op
  below is in the ONNX frontend's default-opset list, MaxRoiPool included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import caffe2torch as c2t  # noqa: E402
from caffe2torch.errors import CaffeError  # noqa: E402
from caffe2torch.export import export_onnx  # noqa: E402

TENSORRT_NO = {"MaxRoiPool": "not supported"}
TENSORRT_NOTE = {"TopK": "K < 3840", "NonZero": "TensorRT >= 8.6"}
# ONNX ops the OpenVINO ONNX frontend lists (those our exports use)
OPENVINO_OPS = {
    "Abs", "Add", "And", "ArgMax", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip",
    "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "CumSum", "Div",
    "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather",
    "GatherElements", "GatherND", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater",
    "GreaterOrEqual", "Identity", "If", "InstanceNormalization", "LRN", "LSTM", "LeakyRelu",
    "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop", "LpNormalization", "MatMul", "Max",
    "MaxPool", "MaxRoiPool", "Mean", "MeanVarianceNormalization", "Min", "Mod", "Mul", "Neg",
    "NonMaxSuppression", "NonZero", "Not", "OneHot", "Or", "PRelu", "Pad", "Pow", "RNN",
    "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceMax", "ReduceMean", "ReduceMin",
    "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "Round",
    "ScatterElements", "ScatterND", "Shape", "Sigmoid", "Sign", "Sin", "Size", "Slice",
    "Softmax", "Softplus", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Tile", "TopK",
    "Transpose", "Unsqueeze", "Where", "Xor",
}

FORKS = {
    "Permute": 'layer { name: "x" type: "Permute" bottom: "data" top: "x" '
               "permute_param { order: 0 order: 2 order: 3 order: 1 } }",
    "PriorBox": 'layer { name: "x" type: "PriorBox" bottom: "data" bottom: "data" top: "x" '
                "prior_box_param { min_size: 4 aspect_ratio: 2 flip: true } }",
    "Normalize": 'layer { name: "x" type: "Normalize" bottom: "data" top: "x" }',
    "Interp": 'layer { name: "x" type: "Interp" bottom: "data" top: "x" '
              "interp_param { zoom_factor: 2 } }",
    "ReLU6": 'layer { name: "x" type: "ReLU6" bottom: "data" top: "x" }',
    "ShuffleChannel": 'layer { name: "x" type: "ShuffleChannel" bottom: "data" top: "x" '
                      "shuffle_channel_param { group: 2 } }",
    "Upsample": 'layer { name: "x" type: "Upsample" bottom: "data" top: "x" '
                "upsample_param { scale: 2 } }",
}
FORK_INPUT = ('layer { name: "in" type: "Input" top: "data" '
              "input_param { shape { dim: 2 dim: 4 dim: 6 dim: 6 } } }\n")
ROI_INPUT = ('layer { name: "in" type: "Input" top: "data" top: "rois" input_param { '
             "shape { dim: 2 dim: 8 dim: 6 dim: 6 } shape { dim: 3 dim: 5 } } }\n")
SSD_INPUT = ('layer { name: "in" type: "Input" top: "data" top: "loc" top: "conf" '
             "input_param { shape { dim: 2 dim: 4 dim: 2 dim: 2 } shape { dim: 2 dim: 16 } "
             "shape { dim: 2 dim: 12 } } }\n"
             'layer { name: "prior" type: "PriorBox" bottom: "data" bottom: "data" '
             'top: "prior" prior_box_param { min_size: 1 variance: 0.1 } }\n')
DETECTION_OUTPUT = (
    'layer { name: "x" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" '
    'top: "x" detection_output_param { num_classes: 3 share_location: true '
    "background_label_id: 0 nms_param { nms_threshold: 0.45 top_k: 4 } "
    "code_type: CENTER_SIZE keep_top_k: 4 confidence_threshold: 0.01 } }")
# (net text, export options) of the detection heads
HEADS = {
    "ROIPooling": (ROI_INPUT + 'layer { name: "x" type: "ROIPooling" bottom: "data" '
                   'bottom: "rois" top: "x" roi_pooling_param { pooled_h: 2 pooled_w: 2 } }',
                   {}),
    "PSROIPooling": (ROI_INPUT + 'layer { name: "x" type: "PSROIPooling" bottom: "data" '
                     'bottom: "rois" top: "x" psroi_pooling_param { spatial_scale: 1 '
                     "output_dim: 2 group_size: 2 } }", {}),
    "DetectionOutput": (SSD_INPUT + DETECTION_OUTPUT, {}),
    "DetectionOutput (--trt-nms)": (SSD_INPUT + DETECTION_OUTPUT, {"trt_nms": True}),
    "YoloDetectionOutput": (
        'layer { name: "in" type: "Input" top: "data" '
        "input_param { shape { dim: 2 dim: 16 dim: 2 dim: 2 } } }\n"
        'layer { name: "x" type: "YoloDetectionOutput" bottom: "data" top: "x" '
        "yolo_detection_output_param { side: 2 num_classes: 3 num_box: 2 "
        "biases: 1 biases: 1 biases: 2 biases: 2 } }", {}),
}


def ops_of(net: c2t.CaffeNet, tmp: Path, **options: bool) -> set[str]:
    export_onnx(net, tmp / "m.onnx", keep_losses=True, **options)
    nodes = onnx.load(tmp / "m.onnx").graph.node
    return {f"{n.domain}::{n.op_type}" if n.domain else n.op_type for n in nodes} - {
        "Constant", "Identity"}


def rows(golden: Path, tmp: Path) -> list[tuple[str, str]]:
    out = []
    for type_dir in sorted(p for p in (golden / "layers").iterdir() if p.is_dir()):
        case = sorted(p for p in type_dir.iterdir() if (p / "net.prototxt").exists())
        if not case:
            continue
        try:
            net = c2t.load_net(case[0] / "net.prototxt")
            ops = ops_of(net, tmp)
            out.append((type_dir.name, ", ".join(sorted(ops)) or "(no node)"))
        except CaffeError as err:
            out.append((type_dir.name, f"not exported: {err.message.split(': ', 1)[-1][:80]}"))
    for name, text in FORKS.items():
        (tmp / "f.prototxt").write_text(FORK_INPUT + text)
        try:
            ops = ops_of(c2t.load_net(tmp / "f.prototxt"), tmp)
            out.append((name, ", ".join(sorted(ops)) or "(constant)"))
        except CaffeError as err:
            out.append((name, f"not exported: {err.message[:80]}"))
    for name, (text, options) in HEADS.items():
        (tmp / "f.prototxt").write_text(text)
        try:
            ops = ops_of(c2t.load_net(tmp / "f.prototxt"), tmp, **options)
            out.append((name, ", ".join(sorted(ops))))
        except CaffeError as err:
            out.append((name, f"not exported: {err.message[:80]}"))
    return out


def accepted(ops_text: str) -> tuple[str, str]:
    if ops_text.startswith(("not exported", "(")):
        return ("-", "-")
    ops = [o.strip() for o in ops_text.split(",")]
    trt = [f"no ({o})" for o in ops if o in TENSORRT_NO]
    notes = [f"{o}: {TENSORRT_NOTE[o]}" for o in ops if o in TENSORRT_NOTE]
    ov = [o for o in ops if o not in OPENVINO_OPS]
    plugins = [o for o in ops if o.startswith("TRT::")]
    if plugins:  # a TensorRT plugin: TensorRT with its plugin library, nothing else
        return (f"yes (plugin {', '.join(p[5:] for p in plugins)})", f"no ({', '.join(ov)})")
    return ("; ".join(trt) or ("yes" + (f" ({'; '.join(notes)})" if notes else "")),
            f"no ({', '.join(ov)})" if ov else "yes")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden", type=Path, default=REPO.parent / "shared" / "golden")
    args = ap.parse_args(argv)
    if not (args.golden / "layers").is_dir():
        print(f"no golden layer cases at {args.golden}", file=sys.stderr)
        return 2
    print("| Caffe layer type | ONNX ops | TensorRT 10 | OpenVINO |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, ops in rows(args.golden, Path(tmp)):
            trt, ov = accepted(ops)
            print(f"| {name} | {ops} | {trt} | {ov} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
