"""caffe.net_spec: write nets in Python (``NetSpec``, ``layers as L``, ``params as P``).

    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[64, 1, 28, 28]), dict(dim=[64])], ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20)
    n.loss = L.SoftmaxWithLoss(n.conv1, n.label)
    print(n.to_proto())

Keyword arguments go to the layer's ``*_param`` message (found from the schema and, for
types that use another type's message, from the layer registry), or to the
LayerParameter itself (``param``, ``loss_weight``, ``include``...). Names follow pycaffe:
NetSpec attributes name their tops and layers; anonymous tops are ``<Type><n>``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from caffe2torch.pycaffe import schema


def param_name_dict() -> dict[str, str]:
    """{layer type: its ``*_param`` field without ``_param``}: the schema's convention
    (``convolution_param`` holds a ConvolutionParameter), then the registry's own
    mapping for the types that share another's message (fork types included), where the
    schema in use (ours, or a fork's under `run --proto`) has that field."""
    layer = schema.caffe_pb2().LayerParameter()
    fields = layer.DESCRIPTOR.fields_by_name
    out: dict[str, str] = {}
    for f in layer.DESCRIPTOR.fields:
        if f.name.endswith("_param") and f.message_type is not None:
            type_name = f.message_type.name
            if type_name.endswith("Parameter"):
                out[type_name[: -len("Parameter")]] = f.name[: -len("_param")]
    try:
        from caffe2torch.layers.registry import _REGISTRY, _load_builtin_layers

        _load_builtin_layers()
        for name, spec in _REGISTRY.items():
            param = getattr(spec, "param", None)
            if param and param.endswith("_param") and name not in out and param in fields:
                out[name] = param[: -len("_param")]
    except ImportError:  # the schema's convention alone
        pass
    return out


_param_names: dict[int, dict[str, str]] = {}  # per schema module (id)


def _param_field(type_name: str) -> str | None:
    key = id(schema.caffe_pb2())
    if key not in _param_names:
        _param_names[key] = param_name_dict()
    name = _param_names[key].get(type_name)
    return name + "_param" if name else None


def assign_proto(proto: Any, name: str, val: Any) -> None:
    """Set field ``name`` of ``proto`` from a Python value: lists fill repeated fields
    (a single value becomes a one-element list), dicts fill messages."""
    field = getattr(proto, name)
    repeated = hasattr(field, "extend")
    if repeated and not isinstance(val, (list, tuple)):
        val = [val]
    if isinstance(val, (list, tuple)):
        if val and isinstance(val[0], dict):
            for item in val:
                msg = field.add()
                for k, v in item.items():
                    assign_proto(msg, k, v)
        else:
            field.extend(val)
    elif isinstance(val, dict):
        for k, v in val.items():
            assign_proto(field, k, v)
    else:
        setattr(proto, name, val)


class Top:
    """One output blob of a layer function (the ``n``-th of ``fn``)."""

    def __init__(self, fn: Function, n: int) -> None:
        self.fn = fn
        self.n = n

    def to_proto(self) -> Any:
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers: dict, names: dict, autonames: Counter) -> None:
        self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer: its type, its input Tops and its settings."""

    def __init__(self, type_name: str, inputs: tuple[Any, ...], params: dict[str, Any]
                 ) -> None:
        self.type_name = type_name
        for i, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                raise TypeError(f"{type_name} input {i} is not a Top (type is {type(inp)})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _top_name(self, top: Top, names: dict, autonames: Counter) -> str:
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = f"{top.fn.type_name}{autonames[top.fn.type_name]}"
        return names[top]

    def _name(self, names: dict, autonames: Counter) -> str:
        if self not in names:
            if self.ntop > 0:  # a layer is named after its first top
                names[self] = self._top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = f"{self.type_name}{autonames[self.type_name]}"
        return names[self]

    def _to_proto(self, layers: dict, names: dict, autonames: Counter) -> None:
        if self in layers:
            return
        bottoms = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottoms.append(layers[inp.fn].top[inp.n])
        layer = schema.caffe_pb2().LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(t, names, autonames) for t in self.tops)
        layer.name = self._name(names, autonames)
        field = _param_field(self.type_name)
        for k, v in self.params.items():
            if k.endswith("param") or field is None:
                assign_proto(layer, k, v)
                continue
            try:
                assign_proto(getattr(layer, field), k, v)
            except AttributeError:
                assign_proto(layer, k, v)
        layers[self] = layer


def to_proto(*tops: Top) -> Any:
    """A NetParameter with every layer needed to compute ``tops`` (auto names)."""
    layers: OrderedDict = OrderedDict()
    autonames: Counter = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = schema.caffe_pb2().NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Tops assigned as attributes (or items) name their blobs and layers;
    ``to_proto()`` writes every layer needed for them."""

    def __init__(self) -> None:
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.tops[key] = value

    def __getitem__(self, key: str) -> Any:
        return self.tops[key]

    def __delitem__(self, key: str) -> None:
        del self.tops[key]

    def keys(self) -> list[str]:
        return list(self.tops)

    # vals and update: weiliu89/caffe's (SSD) NetSpec, which its model_libs.py and the
    # forks built on it (RefineDet, MobileNet-SSD's generators) call
    def vals(self) -> list[Any]:
        return list(self.tops.values())

    def update(self, name: str, params: dict[str, Any]) -> None:
        """Changes or adds settings of the layer that made top ``name``."""
        self.tops[name].fn.params.update(params)

    def to_proto(self) -> Any:
        names = {v: k for k, v in self.tops.items()}
        autonames: Counter = Counter()
        layers: OrderedDict = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = schema.caffe_pb2().NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``L.<Type>(*bottoms, **settings)``: a Top, a tuple of Tops (``ntop=k``), or the
    Function itself for ``ntop=0``."""

    def __getattr__(self, type_name: str) -> Any:
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def layer_fn(*args: Any, **kwargs: Any) -> Any:
            fn = Function(type_name, args, kwargs)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops

        layer_fn.__name__ = type_name
        return layer_fn


class Parameters:
    """``P.<Type>.<ENUM>``: enum values of ``<Type>Parameter`` (``P.Pooling.MAX``)."""

    def __getattr__(self, type_name: str) -> Any:
        if type_name.startswith("__"):
            raise AttributeError(type_name)
        message = getattr(schema.caffe_pb2(), type_name + "Parameter")

        class _Enums:
            def __getattr__(self, value: str) -> Any:
                return getattr(message, value)

        return _Enums()


layers = Layers()
params = Parameters()
