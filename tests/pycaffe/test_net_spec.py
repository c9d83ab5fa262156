"""caffe.net_spec: every layer type the schema and registry know writes its settings into
its own ``*_param`` message (fork types included), and the text reads back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

import caffe2torch as c2t
import caffe2torch.pycaffe as caffe
from caffe2torch.layers.registry import _REGISTRY, _load_builtin_layers
from caffe2torch.proto import caffe_pb2
from caffe2torch.pycaffe import layers as L
from caffe2torch.pycaffe import params as P
from caffe2torch.pycaffe.net_spec import assign_proto


def _types_with_params() -> list[tuple[str, str]]:
    _load_builtin_layers()
    return sorted((name, spec.param) for name, spec in _REGISTRY.items() if spec.param)


def _value_for(field: Any) -> Any:
    """A non-default Python value for a scalar field."""
    value = field.default_value
    if field.enum_type is not None:
        return field.enum_type.values[-1].number
    if field.type == field.TYPE_BOOL:
        return not value
    if field.type == field.TYPE_STRING:
        return "x"
    return (value or 0) + 1


def _setting(message_descriptor: Any) -> tuple[str, Any]:
    """(field name, Python value) for one field of a message: a scalar when it has one,
    else a repeated scalar (a list), else a message (a dict, recursively)."""
    fields = list(message_descriptor.fields)
    for f in fields:
        if not f.is_repeated and f.message_type is None:
            return f.name, _value_for(f)
    for f in fields:
        if f.message_type is None:
            return f.name, [_value_for(f)]
    f = fields[0]
    name, value = _setting(f.message_type)
    return f.name, ([{name: value}] if f.is_repeated else {name: value})


@pytest.mark.parametrize("type_name,param", _types_with_params(),
                         ids=[t for t, _ in _types_with_params()])
def test_every_type_routes_its_settings(type_name: str, param: str) -> None:
    name, value = _setting(getattr(caffe_pb2.LayerParameter(), param).DESCRIPTOR)
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.out = getattr(L, type_name)(n.data, **{name: value})
    layer = n.to_proto().layer[1]
    assert layer.type == type_name
    expected = getattr(caffe_pb2.LayerParameter(), param)
    assign_proto(expected, name, value)
    assert getattr(layer, param) == expected and getattr(layer, param).ListFields()
    text = str(n.to_proto())
    again = text_format.Parse(text, caffe_pb2.NetParameter())
    assert again.layer[1] == layer


def test_fork_type_through_the_registry() -> None:
    """A fork type whose name does not follow the schema's convention still finds its
    message (ConvolutionDepthwise uses convolution_param)."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 4, 8, 8]))
    n.dw = L.ConvolutionDepthwise(n.data, num_output=4, kernel_size=3)
    layer = n.to_proto().layer[1]
    assert layer.convolution_param.num_output == 4


def test_layer_fields_params_and_in_place(tmp_path: Path) -> None:
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[4, 1, 6, 6]), dict(dim=[4])], ntop=2)
    n.conv = L.Convolution(n.data, num_output=3, kernel_size=3, param=[dict(lr_mult=1),
                           dict(lr_mult=2, decay_mult=0)], weight_filler=dict(type="xavier"))
    n.pool = L.Pooling(n.conv, pool=P.Pooling.AVE, kernel_size=2, stride=2)
    n.relu = L.ReLU(n.pool, in_place=True)
    n.ip = L.InnerProduct(n.relu, num_output=2)
    n.loss = L.SoftmaxWithLoss(n.ip, n.label, loss_weight=0.5,
                               include=dict(phase=caffe.TRAIN))
    proto = n.to_proto()
    conv = proto.layer[1]
    assert [p.lr_mult for p in conv.param] == [1, 2] and conv.param[1].decay_mult == 0
    assert proto.layer[2].pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert list(proto.layer[3].bottom) == list(proto.layer[3].top) == ["pool"]
    assert list(proto.layer[5].loss_weight) == [0.5]
    path = tmp_path / "net.prototxt"
    path.write_text(str(proto))
    net = c2t.load_net(path, phase="TRAIN")
    assert net.outputs == ["loss"]


def test_anonymous_names_follow_pycaffe() -> None:
    data = L.Input(shape=dict(dim=[1, 3]))
    ip = L.InnerProduct(L.ReLU(data), num_output=2)
    proto = ip.to_proto()
    assert [ly.name for ly in proto.layer] == ["Input1", "ReLU1", "InnerProduct1"]
    assert list(proto.layer[2].bottom) == ["ReLU1"]


def test_ssd_fork_netspec_update_and_vals() -> None:
    # weiliu89/caffe's model_libs.py: net.update(name, {...}) changes the settings of the
    # layer behind a top after it was made (CreateMultiBoxHead's PriorBox max_size, step)
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.prior = L.PriorBox(n.data, n.data, min_size=4.0)
    n.update("prior", {"max_size": 8.0, "step": 2.0})
    assert n.vals() == [n.data, n.prior] and n.keys() == ["data", "prior"]
    layer = n.to_proto().layer[1]
    assert list(layer.prior_box_param.max_size) == [8.0]
    assert layer.prior_box_param.step == 2.0
    with pytest.raises(KeyError):
        n.update("missing", {})
