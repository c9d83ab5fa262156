"""CaffeNet: a built net as an nn.Module with pycaffe's vocabulary.

    out = net(data=x)                   # {blob name: tensor} of the net outputs
    out = net(data=x, blobs=["conv1"])  # ...plus intermediate blobs (after in-place layers)
    net.params["conv1"]                 # [weight, bias] in caffemodel order
    net.blobs, net.blob_shapes, net.inputs, net.outputs, net.loss_weights, net.code

The layer modules live in ``net.layers`` (the root module: one attribute per layer, named
by an identifier made from the Caffe name, see ``net.layer_attrs``). The fx GraphModules
that run them are kept outside the module tree, so state_dict and parameters() list every
layer once.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import fx, nn

from caffe2torch.errors import CaffeError
from caffe2torch.graph.assemble import build_graph
from caffe2torch.ir.graph import BlobRef, NetIR
from caffe2torch.ir.params import ParamTable
from caffe2torch.ir.sharing import SharingPlan
from caffe2torch.layers.registry import layer_blobs
from caffe2torch.suggest import close_names, did_you_mean

if TYPE_CHECKING:
    from caffe2torch.runtime.feeding import BatchStream
    from caffe2torch.runtime.hdf5_output import HDF5OutputFile

Shape = tuple[int, ...]


class LearnableParam(NamedTuple):
    """One of Caffe's learnable_params_, with the multipliers the solver applies."""

    name: str  # "<layer>/<blob index>" of the owning layer
    param: nn.Parameter
    lr_mult: float
    decay_mult: float


class CaffeLayers(nn.Module):
    """The root module: owns every layer module of a net."""


class CaffeNet(nn.Module):
    """A Caffe net for one phase; see the module docstring."""

    def __init__(
        self,
        ir: NetIR,
        layers: CaffeLayers,
        attrs: Sequence[str],
        modules: Sequence[nn.Module],
        shapes: Mapping[BlobRef, Shape],
        input_args: Mapping[BlobRef, str],
        table: ParamTable,
        sharing: SharingPlan,
        net_param: Any,
        source_map: Any = None,
    ) -> None:
        super().__init__()
        self.layers = layers
        self.ir = ir
        self.state = ir.state
        self.phase = ir.state.phase
        self.net_param = net_param
        self.source_map = source_map
        self.proto: Any = None  # the fork schema the net was read with (load_net(proto=))
        self.param_table = table
        self.shared_report = sharing
        self.layer_names = [ly.name for ly in ir.layers]
        self.layer_attrs: dict[str, str] = {}
        for ly, attr in zip(ir.layers, attrs):
            self.layer_attrs.setdefault(ly.name, attr)
        self._attrs = list(attrs)
        self._modules_in_order = list(modules)
        self._version_shapes = dict(shapes)
        self._input_args = dict(input_args)
        self.inputs = [ref.name for ref in ir.inputs]
        self.outputs = [ref.name for ref in ir.outputs]
        loss_refs = ir.loss_weights()
        self.loss_weights = {ref.name: w for ref, w in loss_refs.items()}
        self._base_outputs = [(ref.name, ref) for ref in ir.outputs]
        for ref in loss_refs:  # a loss top some later layer consumes is still reported
            if ref.name not in self.outputs:
                self._base_outputs.append((ref.name, ref))
        self._graphs: dict[tuple[str, ...], fx.GraphModule] = {}
        self.blobs: OrderedDict[str, torch.Tensor] = OrderedDict()
        # net() with no inputs draws them from here (a data layer's next batch, Caffe's
        # Net::Forward): runtime.feeding's streams, set by load_net and build_fed_net
        self.feeder: Callable[[], Mapping[str, Any]] | None = None
        self.compiled: Any = None  # graph.compile.CompiledGraphs once compile_net ran
        self.fold_conv_bn = False  # graph.fold: Convolution + BatchNorm (+ Scale) as one
        self.memory_format: Any = None  # graph.layout: torch.channels_last feeds NHWC
        # the stream a solver or `caffe2torch test` reads, skips and closes (build_fed_net)
        self.batch_stream: BatchStream | None = None
        # writers attached to the HDF5Output layers (build_fed_net)
        self.hdf5_outputs: list[HDF5OutputFile] = []
        self.train(self.phase == "TRAIN")

    # ------------------------------------------------------------------ structure

    @property
    def name(self) -> str:
        return self.ir.name

    @property
    def graph_module(self) -> fx.GraphModule:
        """The GraphModule computing the net outputs (positional inputs, dict out)."""
        return self._graph(())

    @property
    def code(self) -> str:
        return self.graph_module.code

    @property
    def blob_shapes(self) -> OrderedDict[str, Shape]:
        """Shape of every blob (its final version), known right after the build."""
        out: OrderedDict[str, Shape] = OrderedDict()
        for name in self.ir.blob_names():
            out[name] = self._version_shapes[self.ir.final(name)]
        return out

    @property
    def params(self) -> OrderedDict[str, list[nn.Parameter]]:
        """{layer name: its param blobs in caffemodel order} for layers that have any."""
        out: OrderedDict[str, list[nn.Parameter]] = OrderedDict()
        for name, module in zip(self.layer_names, self._modules_in_order):
            if len(layer_blobs(module)):
                out[name] = list(layer_blobs(module))
        return out

    @property
    def data_layers(self) -> list[Any]:
        """The data layers (LayerParameter) of this phase, in net order."""
        return [ly.proto for ly in self.ir.layers if ly.is_data]

    def module(self, layer_name: str) -> nn.Module:
        """The module of the (first) layer called ``layer_name``."""
        return getattr(self.layers, self.layer_attrs[layer_name])

    def learnable_params(self) -> list[LearnableParam]:
        """Caffe's learnable_params_: each owned param blob once, in net order, with the
        owner's lr_mult and decay_mult (sharers' settings merged as Net::AppendParam does)."""
        out = []
        for entry in self.param_table.learnable:
            param = layer_blobs(self._modules_in_order[entry.position])[entry.index]
            out.append(
                LearnableParam(f"{entry.layer}/{entry.index}", param, entry.lr_mult,
                               entry.decay_mult)
            )
        return out

    def forget_param_caches(self) -> None:
        """Drop what layers derived from their params and reuse while the params' version
        counters stay (BatchNorm's scaled statistics, folded convolution weights). Needed
        after writes that bypass the counters: through numpy views of the params (as
        pycaffe's ``net.params[...][i].data[...] = x``, whose Net calls this before each
        pass) or ``p.data[...] = x``; writes under ``torch.no_grad()`` and loads are seen."""
        graphs = [gm.modules() for gm in self._graphs.values()]  # folded chains live there
        for module in {id(m): m for m in itertools.chain(self.modules(), *graphs)}.values():
            forget = getattr(module, "forget_param_cache", None)
            if forget is not None:
                forget()

    def _graph(self, extra: tuple[str, ...]) -> fx.GraphModule:
        gm = self._graphs.get(extra)
        if gm is None:
            outputs = list(self._base_outputs)
            keys = {k for k, _ in outputs}
            for name in extra:
                if name not in keys:
                    outputs.append((name, self.ir.final(name)))
                    keys.add(name)
            folds: dict[str, nn.Module] | None = {} if self.fold_conv_bn else None
            graph = build_graph(
                self.ir, self._modules_in_order, self._attrs, self._input_args, outputs,
                conv_folds=folds,
            )
            root: nn.Module | dict[str, Any] = self.layers
            if folds:  # the folded chains' modules beside the layers (not in the net's tree)
                root = {**dict(self.layers.named_children()), **folds}
            gm = fx.GraphModule(root, graph, class_name=_class_name(self.ir.name))
            self._graphs[extra] = gm
        return gm

    # ------------------------------------------------------------------ running

    def forward(
        self, *args: Any, blobs: Iterable[str] | str | None = None, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Run the net. Inputs by blob name (``net(data=x)``, or one dict for names that
        are not identifiers), or positionally in ``net.inputs`` order; with none given and a
        ``feeder`` set, the next batch comes from it. ``blobs`` adds intermediate blobs to
        the result (``"all"``: every blob)."""
        feed = self._collect_inputs(args, kwargs)
        if self.memory_format is not None:
            from caffe2torch.graph.layout import inputs_channels_last

            feed = inputs_channels_last(feed)
        extra = self._extra(blobs)
        gm = self._graph(extra)
        run = gm if self.compiled is None else self.compiled.runner(gm)
        out = run(*[feed[name] for name in self.inputs])
        self.blobs = OrderedDict(out)
        return out

    def _extra(self, blobs: Iterable[str] | str | None) -> tuple[str, ...]:
        if blobs is None:
            return ()
        names = self.ir.blob_names() if blobs == "all" else [blobs] if isinstance(
            blobs, str
        ) else list(blobs)
        known = set(self.ir.blob_names())
        for name in names:
            if name not in known:
                raise CaffeError(
                    f"the {self.phase} net has no blob '{name}'",
                    hint=did_you_mean(close_names(name, known, cutoff=0.5), quote="'"),
                )
        return tuple(names)

    def _collect_inputs(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        given: dict[str, Any] = {}
        # (None: a default some exporters fill in for keyword parameters)
        positional = [a for a in args if a is not None and not isinstance(a, Mapping)]
        if len(positional) > len(self.inputs):
            raise CaffeError(
                f"the net takes {len(self.inputs)} input(s) ({', '.join(self.inputs)}), "
                f"got {len(positional)}"
            )
        given.update(zip(self.inputs, positional))
        for a in args:  # dicts by blob name (names that are not identifiers)
            if isinstance(a, Mapping):
                given.update(a)
        given.update(kwargs)
        if not given and self.inputs and self.feeder is not None:
            given = dict(self.feeder())  # Caffe's data layers draw their next batch
        unknown = [k for k in given if k not in self.inputs]
        if unknown:
            raise CaffeError(
                f"'{unknown[0]}' is not an input of the {self.phase} net "
                f"(inputs: {', '.join(self.inputs) or 'none'})",
                hint=did_you_mean(close_names(unknown[0], self.inputs, cutoff=0.5), quote="'"),
            )
        missing = [n for n in self.inputs if n not in given]
        if missing:
            raise CaffeError(
                f"no value for input '{missing[0]}' of the {self.phase} net",
                hint="pass it by name (net(data=x)) or set net.feeder to draw batches",
            )
        feed = {n: given[n] for n in self.inputs}
        if not all(isinstance(v, torch.Tensor) for v in feed.values()):
            device = _device_of(self.layers)  # arrays and lists go where the params are
            feed = {n: _as_tensor(v, device) for n, v in feed.items()}
        return feed

    def loss(self, outputs: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Caffe's loss: the sum over loss blobs of loss_weight * blob.sum()."""
        outputs = self.blobs if outputs is None else outputs
        total: torch.Tensor | None = None
        for name, weight in self.loss_weights.items():
            if name not in outputs:
                raise CaffeError(f"loss blob '{name}' is not among the given outputs")
            term = weight * outputs[name].sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros((), device=_device_of(self.layers))
        return total

    # ------------------------------------------------------------------ weights

    def copy_from(self, source: Any, proto: Any = None) -> Any:
        """Load weights by layer name as Caffe's CopyTrainedLayersFrom does: a path
        (.caffemodel, V1 or V2, or .caffemodel.h5), a NetParameter with blobs, or
        {layer: [arrays]}. Returns a CopyReport (copied, ignored, missing layers).
        ``proto``: the fork's caffe.proto that wrote the caffemodel (default: the one the
        net was read with, ``self.proto``)."""
        from caffe2torch.graph.weights import copy_weights

        return copy_weights(self, source, proto if proto is not None else self.proto)

    def save_caffemodel(self, path: Any, proto: Any = None) -> None:
        """Write this net's layers and param blobs as a V2 binary caffemodel; ``proto``: in
        that fork's field numbers, for the fork's Caffe to read."""
        from caffe2torch.graph.weights import save_caffemodel

        save_caffemodel(self, path, proto)

    def extra_repr(self) -> str:
        return f"name={self.ir.name!r}, phase={self.phase}, layers={len(self.layer_names)}"


def _class_name(net_name: str) -> str:
    from caffe2torch.graph.names import identifier

    ident = identifier(net_name or "CaffeNet")
    return ident if ident[0].isupper() else "Net_" + ident


def _device_of(module: nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def _as_tensor(value: Any, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(np.asarray(value, dtype=np.float32), device=device)
