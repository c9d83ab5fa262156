"""The graph builder: wiring, names, shapes, errors, outputs, phases and the CaffeNet API."""

from __future__ import annotations

import operator

import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import BuildError, CaffeError
from caffe2torch.graph import build_net
from caffe2torch.graph.names import NameTable, identifier
from caffe2torch.io import read_net_text
from caffe2torch.ir import NetState, build_ir

TINY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } shape { dim: 2 } } }
layer { name: "inception_3a/1x1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "split" type: "Slice" bottom: "conv1" top: "a" top: "b"
        slice_param { axis: 1 slice_point: 1 } }
layer { name: "ip" type: "InnerProduct" bottom: "b" top: "ip"
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def tiny(phase: str = "TEST", **kw) -> c2t.CaffeNet:
    return build_net(read_net_text(TINY), phase, **kw)


def test_identifiers_are_reversible_and_unique():
    assert identifier("inception_3a/1x1") == "inception_3a_1x1"
    assert identifier("1x1") == "_1x1"
    assert identifier("class") == "class_"
    assert identifier("forward") == "forward_"
    table = NameTable()
    a, b = table.add("a/b", key=0), table.add("a_b", key=1)
    assert (a, b) == ("a_b", "a_b_2")
    assert table.caffe(b) == "a_b" and table.caffe(a) == "a/b"


def test_code_reads_like_pytorch_with_caffe_names():
    net = tiny()
    code = net.code
    assert "def forward(self, data, label)" in code
    assert "self.inception_3a_1x1(data)" in code
    assert "self.relu1(conv1" in code  # (conv1, inplace = True): Caffe's in-place ReLU
    assert "getitem" not in code or "split[1]" in code
    assert "'loss': loss" in code and "'a': a" in code
    assert net.layer_attrs["inception_3a/1x1"] == "inception_3a_1x1"
    gm_nodes = [n for n in net.graph_module.graph.nodes if n.op == "call_function"]
    assert all(n.target is operator.getitem for n in gm_nodes)


def test_shapes_outputs_and_loss_weights():
    net = tiny()
    assert net.blob_shapes["conv1"] == (2, 4, 6, 6)
    assert net.blob_shapes["b"] == (2, 3, 6, 6)
    assert net.inputs == ["data", "label"]
    assert net.outputs == ["a", "loss"]  # unconsumed tops, sorted as Caffe's std::set
    assert net.loss_weights == {"loss": 1.0}
    x = torch.randn(2, 3, 8, 8)
    out = net(data=x, label=torch.tensor([0.0, 2.0]))
    assert set(out) == {"a", "loss"}
    assert torch.allclose(net.loss(out), out["loss"].sum())
    assert net.blobs is not None and "loss" in net.blobs


def test_intermediate_blob_is_value_after_in_place_layers():
    net = tiny()
    out = net(data=torch.randn(2, 3, 8, 8), label=torch.zeros(2), blobs=["conv1", "data"])
    assert out["conv1"].min() >= 0  # after relu1, as pycaffe shows conv1
    everything = net(data=torch.randn(2, 3, 8, 8), label=torch.zeros(2), blobs="all")
    assert set(everything) >= {"data", "label", "conv1", "a", "b", "ip", "loss"}
    with pytest.raises(CaffeError, match="no blob 'conv2'"):
        net(data=torch.randn(2, 3, 8, 8), label=torch.zeros(2), blobs=["conv2"])


def test_inputs_by_dict_position_and_feeder():
    net = tiny()
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([1.0, 0.0])
    a = net({"data": x, "label": y})["loss"]
    b = net(x, y)["loss"]
    assert torch.equal(a, b)
    with pytest.raises(CaffeError, match="no value for input 'label'"):
        net(data=x)
    net.feeder = lambda: {"data": x, "label": y}
    assert torch.equal(net()["loss"], a)


def test_unknown_bottom_names_layer_blob_phase_and_suggestion():
    text = TINY.replace('bottom: "b" top: "ip"', 'bottom: "bb" top: "ip"')
    with pytest.raises(BuildError) as err:
        build_ir(read_net_text(text), NetState("TRAIN"))
    msg = str(err.value)
    assert "layer 'ip'" in msg and "'bb'" in msg and "TRAIN" in msg
    assert "did you mean \"b\"" in msg


def test_unknown_bottom_made_only_in_other_phase(tmp_path):
    text = """
    layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } }
            include { phase: TRAIN } }
    layer { name: "r" type: "ReLU" bottom: "x" top: "y" }
    """
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    with pytest.raises(BuildError) as err:
        c2t.load_net(path, phase="TEST")
    e = err.value
    assert e.line == 4 and e.path == str(path)
    assert "not in the TEST phase" in e.hint
    assert c2t.load_net(path, phase="TRAIN").outputs == ["y"]


def test_top_made_twice_is_refused():
    text = TINY.replace('top: "ip"\n', 'top: "a"\n')
    with pytest.raises(BuildError, match="produced by multiple sources"):
        tiny_text(text)


def tiny_text(text: str) -> c2t.CaffeNet:
    return build_net(read_net_text(text), "TEST")


def test_shape_error_names_layer_type_shapes_and_line(tmp_path):
    text = """name: "bad"
layer { name: "in" type: "Input" top: "a" top: "b"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 4 } } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "c" }
"""
    path = tmp_path / "bad.prototxt"
    path.write_text(text)
    with pytest.raises(BuildError) as err:
        c2t.load_net(path)
    e = err.value
    assert "'sum'" in str(e) and "Eltwise" in str(e)
    assert e.line == 4 and e.path == str(path)
    assert "(2, 3)" in str(e) and "(2, 4)" in str(e)


class _Boom(torch.nn.Module):
    def forward(self, x):
        return x.reshape(7, -1)  # fails for most shapes


c2t.register_layer("TestOnlyBoom", replace=True)(lambda ctx: _Boom())


def test_meta_forward_failure_becomes_build_error(tmp_path):
    path = tmp_path / "boom.prototxt"
    path.write_text(
        'layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "b/1" type: "TestOnlyBoom" bottom: "a" top: "c" }\n'
    )
    with pytest.raises(BuildError) as err:
        c2t.load_net(path)
    e = err.value
    assert "layer 'b/1' (TestOnlyBoom)" in str(e) and "bottom shapes: 2x3" in str(e)
    assert e.line == 2


def test_unknown_type_suggests_names():
    text = TINY.replace('type: "ReLU"', 'type: "Relu"')
    with pytest.raises(BuildError, match='did you mean "ReLU"'):
        tiny_text(text)


def test_propagate_down_false_stops_the_gradient():
    text = """
    layer { name: "in" type: "Input" top: "a" top: "b"
            input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "c"
            propagate_down: true propagate_down: false }
    """
    net = tiny_text(text)
    a = torch.randn(2, 3, requires_grad=True)
    b = torch.randn(2, 3, requires_grad=True)
    net(a=a, b=b)["c"].sum().backward()
    assert a.grad is not None and b.grad is None
    assert "detach" in net.code


def test_phase_filtering_and_modes():
    text = """
    layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 4 dim: 5 } } }
    layer { name: "drop" type: "Dropout" bottom: "x" top: "x"
            include { phase: TRAIN } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 2 } }
    """
    param = read_net_text(text)
    train = build_net(param, "TRAIN")
    test = build_net(param, "TEST", share_with=train)
    assert train.training and not test.training
    assert train.layer_names == ["d", "drop", "ip"] and test.layer_names == ["d", "ip"]
    # Caffe's ShareTrainedLayersWith: the TEST net uses the TRAIN net's params
    assert test.params["ip"][0] is train.params["ip"][0]
    assert [ly.name for ly in train.data_layers] == ["d"]
    x = torch.randn(4, 5)
    assert torch.equal(test(x=x)["y"], test(x=x)["y"])


def test_stages_and_levels():
    text = """
    layer { name: "d" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }
    layer { name: "deploy_only" type: "ReLU" bottom: "x" top: "y"
            include { stage: "deploy" } }
    layer { name: "deep" type: "TanH" bottom: "x" top: "z" include { min_level: 2 } }
    """
    param = read_net_text(text)
    assert build_net(param, NetState("TEST")).layer_names == ["d"]
    assert build_net(param, NetState("TEST", 0, ("deploy",))).outputs == ["y"]
    assert build_net(param, NetState("TEST", 2)).outputs == ["z"]


def test_learnable_params_order_and_multipliers():
    text = TINY.replace(
        'name: "ip" type: "InnerProduct"',
        'name: "ip" type: "InnerProduct" param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }',
    )
    net = tiny_text(text)
    got = [(name, lr, decay) for name, _, lr, decay in net.learnable_params()]
    assert got == [
        ("inception_3a/1x1/0", 1.0, 1.0),
        ("inception_3a/1x1/1", 1.0, 1.0),
        ("ip/0", 1.0, 1.0),
        ("ip/1", 2.0, 0.0),
    ]
    assert list(net.params) == ["inception_3a/1x1", "ip"]
    assert list(net.params["ip"][0].shape) == [3, 108]


def test_lr_mult_zero_computes_no_gradient():
    text = TINY.replace(
        'name: "ip" type: "InnerProduct"',
        'name: "ip" type: "InnerProduct" param { lr_mult: 0 } param { lr_mult: 0 }',
    )
    net = tiny_text(text)
    out = net(data=torch.randn(2, 3, 8, 8), label=torch.zeros(2))
    net.loss(out).backward()
    assert net.params["ip"][0].grad is None
    assert net.params["inception_3a/1x1"][0].grad is not None


def test_loss_layer_without_top_gets_an_anonymous_loss():
    text = TINY.replace('bottom: "label" top: "loss"', 'bottom: "label"')
    net = tiny_text(text)
    assert net.loss_weights == {"(loss)": 1.0}
    assert "(loss)" not in net.outputs
    out = net(data=torch.randn(2, 3, 8, 8), label=torch.zeros(2))
    assert net.loss(out).item() > 0


def test_input_shapes_option_changes_batch():
    net = tiny(input_shapes={"data": (5, 3, 8, 8), "label": (5,)})
    assert net.blob_shapes["ip"] == (5, 3)


def test_too_many_params_refused():
    text = TINY.replace(
        'name: "relu1" type: "ReLU"', 'name: "relu1" type: "ReLU" param { lr_mult: 1 }'
    )
    with pytest.raises(BuildError, match="too many params"):
        tiny_text(text)


def test_lenet_deploy_compiles_and_exports(tmp_path, golden_dir):
    onnxruntime = pytest.importorskip("onnxruntime")
    net = c2t.load_net(golden_dir / "nets" / "lenet" / "net.prototxt")
    x = torch.randn(2, 1, 28, 28)
    expected = net(data=x)["prob"]
    compiled = torch.compile(net, backend="eager")
    assert torch.allclose(compiled(data=x)["prob"], expected)
    path = tmp_path / "lenet.onnx"
    torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["data"],
                      output_names=["prob"])
    session = onnxruntime.InferenceSession(str(path))
    (got,) = session.run(None, {"data": x.numpy()})
    assert abs(got - expected.detach().numpy()).max() < 1e-5


@pytest.mark.slow
def test_lenet_deploy_compiles_with_inductor(golden_dir):
    net = c2t.load_net(golden_dir / "nets" / "lenet" / "net.prototxt")
    x = torch.randn(2, 1, 28, 28)
    compiled = torch.compile(net)
    assert torch.allclose(compiled(data=x)["prob"], net(data=x)["prob"], atol=1e-6)


def test_ir_does_not_import_torch():
    import ast
    from pathlib import Path

    root = Path(c2t.__file__).parent / "ir"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] == "torch" or n.startswith("caffe2torch.layers")
                           or n.startswith("caffe2torch.graph") for n in names), path
