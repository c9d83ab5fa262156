"""--trt-nms: SSD's DetectionOutput as one TRT::BatchedNMS_TRT node (TensorRT's batched
NMS plugin) with Caffe's parameters as its fields, its four outputs the graph's; the file
passes onnx.checker at every opset; the plugin's computation as traced keeps the boxes
Caffe keeps; --verify is skipped with a note (onnxruntime has no such op)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper

from caffe2torch.cli.main import main
from caffe2torch.errors import ExportError
from caffe2torch.export import export_onnx
from caffe2torch.export.trt_nms import OUTPUTS, trt_detection_output
from tests.export.test_onnx_detection import MINI_SSD, _mini

TOPS = [f"det_{o}" for o in OUTPUTS]


def _plugin(path: Path) -> tuple[onnx.ModelProto, onnx.NodeProto]:
    model = onnx.load(path)
    nodes = [n for n in model.graph.node if n.op_type == "BatchedNMS_TRT"]
    assert len(nodes) == 1 and nodes[0].domain == "TRT"
    return model, nodes[0]


@pytest.mark.parametrize("opset", [11, 17, 21])
def test_one_plugin_node_with_caffe_parameters(tmp_path: Path, opset: int) -> None:
    net = _mini(tmp_path, keep=10, threshold=0.3)
    report = export_onnx(net, tmp_path / "m.onnx", trt_nms=True, opset=opset)
    assert report.outputs == TOPS
    model, node = _plugin(tmp_path / "m.onnx")
    onnx.checker.check_model(model, full_check=True)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == pytest.approx({
        "shareLocation": 1, "backgroundLabelId": 0, "numClasses": 4, "topK": 20,
        "keepTopK": 10, "scoreThreshold": 0.3, "iouThreshold": 0.45, "isNormalized": 1,
        "clipBoxes": 0, "scoreBits": 16, "caffeSemantics": 1, "plugin_version": b"1"})
    assert list(node.output) == TOPS == [o.name for o in model.graph.output]
    assert any(o.domain == "TRT" for o in model.opset_import)
    # boxes (batch, priors, 1, 4) and scores (batch, priors, classes) feed it
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    priors = 5 * 5 * 4  # min, max, aspect ratios 2 and 1/2 per cell
    assert shapes[node.input[0]][1:] == [priors, 1, 4]
    assert shapes[node.input[1]][1:] == [priors, 4]
    assert isinstance(shapes[node.input[0]][0], str)  # the batch stays symbolic
    assert shapes["det_nmsed_boxes"] == ["batch", 10, 4]
    assert shapes["det_num_detections"] == ["batch", 1]
    types = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert types["det_num_detections"] == onnx.TensorProto.INT32
    # nothing of the standard-ONNX form is left
    assert not {"NonMaxSuppression", "NonZero"} & {n.op_type for n in model.graph.node}


def test_plugin_keeps_the_boxes_caffe_keeps(tmp_path: Path) -> None:
    """The plugin's computation as traced (per class topK, NMS, keepTopK by score) keeps
    the rows Caffe's layer writes, best score first."""
    net = _mini(tmp_path, keep=10, threshold=0.3)
    layer = net.ir.layer("det")
    caffe_layer = net._modules_in_order[net.layer_names.index("det")]
    module = trt_detection_output(layer, caffe_layer, tuple(net.blob_shapes["prior"]))
    x = torch.from_numpy(np.random.default_rng(1).uniform(-120, 130, (2, 3, 40, 40))
                         .astype(np.float32))
    with torch.no_grad():
        blobs = net(x, blobs=["loc_flat", "conf_out", "prior", "det"])
        packed = module(blobs["loc_flat"], blobs["conf_out"], blobs["prior"])
    rows = blobs["det"].numpy().reshape(-1, 7)
    for image in range(2):
        want = rows[rows[:, 0] == image]
        want = want[np.argsort(-want[:, 2], kind="stable")]
        count = int(packed[image, 0, 6])
        got = packed[image, :count].numpy()
        assert count == len(want) > 0
        np.testing.assert_array_equal(got[:, 5], want[:, 1])  # class
        np.testing.assert_allclose(got[:, 4], want[:, 2], rtol=1e-6)  # score
        np.testing.assert_allclose(got[:, :4], want[:, 3:], rtol=1e-5, atol=1e-6)


def test_cli_skips_verify_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    proto = tmp_path / "ssd.prototxt"
    proto.write_text(MINI_SSD.replace("KEEP", "10").replace("THRESHOLD", "0.3"))
    out = tmp_path / "m.onnx"
    assert main(["export", str(proto), "-o", str(out), "--trt-nms", "--verify"]) == 0
    text = capsys.readouterr()
    assert "det_nmsed_boxes" in text.out
    assert "--verify skipped: onnxruntime cannot run TensorRT's BatchedNMS_TRT" in text.err
    assert "Traceback" not in text.err
    _plugin(out)


def test_simplify_is_refused_with_trt_nms(tmp_path: Path) -> None:
    net = _mini(tmp_path)
    with pytest.raises(ExportError, match="cannot load TensorRT's BatchedNMS_TRT"):
        export_onnx(net, tmp_path / "m.onnx", trt_nms=True, simplify=True)


def test_help_names_the_plugin(capsys: pytest.CaptureFixture) -> None:
    try:
        code = main(["export", "--help"])
    except SystemExit as stop:
        code = stop.code
    assert code == 0
    assert "BatchedNMS_TRT" in capsys.readouterr().out


def test_half_feeds_and_returns_float16(tmp_path: Path) -> None:
    net = _mini(tmp_path)
    export_onnx(net, tmp_path / "m.onnx", trt_nms=True, half=True, batch=1)
    model, node = _plugin(tmp_path / "m.onnx")
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*inferred.graph.value_info, *model.graph.output]}
    f16 = onnx.TensorProto.FLOAT16
    assert [types[i] for i in node.input] == [f16, f16]
    assert [types[o] for o in TOPS] == [onnx.TensorProto.INT32, f16, f16, f16]
    dims = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
    assert dims == [[1, 1], [1, 10, 4], [1, 10], [1, 10]]
