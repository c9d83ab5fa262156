"""The net of one NetState as plain values: layers in order and the blob DAG.

Reproduces the wiring rules of Caffe's Net::Init (src/caffe/net.cpp): FilterNet for the
state, AppendBottom (a bottom must name a blob some earlier layer made), AppendTop (a top
equal to the bottom of the same index is in-place; any other reuse of a name is refused),
the loss weights of SetLossWeights / LossLayer::LayerSetUp, and the net outputs (blobs no
later layer consumes). In-place layers make a new *version* of their blob, so the DAG is
free of aliasing; Caffe's Split layers are not needed (a fan-out is just several users).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from caffe2torch.ir.netstate import NetState, filter_layers, has_include_and_exclude
from caffe2torch.ir.pairs import pair_batch_problems
from caffe2torch.ir.problems import Problem, locate, problem, raise_first
from caffe2torch.proto.forks import fork_bottom_count
from caffe2torch.suggest import close_names, did_you_mean

# Types Caffe derives from LossLayer / that feed tops from outside (used when no registry
# is given; the builder passes the registry's own knowledge).
_LOSS_TYPES = frozenset({
    "ContrastiveLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss",
    "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "SoftmaxWithLoss",
})
_DATA_TYPES = frozenset({"Input", "Data", "ImageData", "HDF5Data", "MemoryData", "WindowData"})


class Counts(Protocol):
    """How many bottoms or tops a type accepts (layers.registry.Arity)."""

    def accepts(self, n: int) -> bool: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class LayerKind:
    """What the wiring needs to know about a layer type."""

    loss: bool = False  # Caffe's LossLayer: loss_weight 1 on top 0 unless given
    data: bool = False  # tops fed from outside the graph
    known: bool = True  # a type some builder is registered for
    bottoms: Counts | None = None  # accepted bottom count (None: not checked here)
    tops: Counts | None = None
    unknown_hint: str | None = None  # for an unknown type: did you mean, how to add it


KindOf = Callable[[str], LayerKind]


def default_kind(type_name: str) -> LayerKind:
    return LayerKind(loss=type_name in _LOSS_TYPES, data=type_name in _DATA_TYPES)


@dataclass(frozen=True, order=True)
class BlobRef:
    """One version of a named blob: version 0 is made by a normal top, each in-place layer
    on the blob makes the next version."""

    name: str
    version: int = 0

    def __str__(self) -> str:
        return self.name if self.version == 0 else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ParamDecl:
    """One ``param { }`` of a layer (Caffe's ParamSpec); None where the field is unset."""

    name: str = ""
    lr_mult: float | None = None
    decay_mult: float | None = None
    share_mode: str = "STRICT"  # or "PERMISSIVE"


@dataclass
class LayerIR:
    """One layer of the filtered net."""

    index: int  # position in NetParameter.layer (for source positions)
    name: str
    type: str
    bottoms: tuple[BlobRef, ...]
    tops: tuple[BlobRef, ...]
    loss_weights: tuple[float, ...]  # one per top
    params: tuple[ParamDecl, ...]
    propagate_down: tuple[bool, ...]  # one per bottom
    kind: LayerKind
    proto: Any = field(repr=False, compare=False)  # the LayerParameter

    @property
    def bottom_names(self) -> list[str]:
        return [b.name for b in self.bottoms]

    @property
    def top_names(self) -> list[str]:
        return [t.name for t in self.tops]

    @property
    def is_data(self) -> bool:
        return self.kind.data

    def in_place(self, top_index: int) -> bool:
        return self.tops[top_index].version > 0


@dataclass
class NetIR:
    """A filtered, wired net for one state."""

    name: str
    state: NetState
    layers: list[LayerIR]
    inputs: list[BlobRef]  # tops of data layers, in net order
    outputs: list[BlobRef]  # Caffe's net output blobs (sorted by name, as Caffe's std::set)
    producer: dict[BlobRef, tuple[int, int]]  # blob -> (position in layers, top index)
    consumers: dict[BlobRef, list[tuple[int, int]]]  # blob -> [(position, bottom index)]
    force_backward: bool = False
    problems: list[Problem] = field(default_factory=list)  # Net::Init's refusals, in order
    _finals: dict[str, BlobRef] | None = field(default=None, repr=False, compare=False)

    def __iter__(self) -> Iterator[LayerIR]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def layer(self, name: str) -> LayerIR:
        for ly in self.layers:
            if ly.name == name:
                return ly
        raise KeyError(name)

    def final(self, blob: str) -> BlobRef:
        """The last version of ``blob`` (its value after all in-place layers on it)."""
        if self._finals is None:
            finals: dict[str, BlobRef] = {}
            for ref in self.producer:
                if ref.name not in finals or ref.version > finals[ref.name].version:
                    finals[ref.name] = ref
            self._finals = finals
        return self._finals[blob]

    def blob_names(self) -> list[str]:
        """Every blob name, in the order the net first makes it."""
        seen: dict[str, None] = {}
        for ly in self.layers:
            for t in ly.tops:
                seen.setdefault(t.name, None)
        return list(seen)

    def loss_weights(self) -> dict[BlobRef, float]:
        """Blobs with a non-zero loss weight (Net::blob_loss_weights_)."""
        out: dict[BlobRef, float] = {}
        for ly in self.layers:
            for top, w in zip(ly.tops, ly.loss_weights):
                if w != 0:
                    out[top] = w
        return out

    def data_layers(self) -> list[LayerIR]:
        return [ly for ly in self.layers if ly.is_data]


def _param_decls(layer: Any) -> tuple[ParamDecl, ...]:
    out = []
    for ps in layer.param:
        mode = "PERMISSIVE" if ps.share_mode == 1 else "STRICT"
        out.append(
            ParamDecl(
                name=ps.name,
                lr_mult=float(ps.lr_mult) if ps.HasField("lr_mult") else None,
                decay_mult=float(ps.decay_mult) if ps.HasField("decay_mult") else None,
                share_mode=mode,
            )
        )
    return tuple(out)


# Found when a layer is created and set up (CreateLayer, CheckBlobCounts), not by wiring.
_SETUP_CODES = frozenset({"C2T301", "C2T302", "C2T303", "C2T330"})
# What the bottoms of a few types are, for a wrong bottom count.
_BOTTOM_NOTES = {
    "ContrastiveLoss": " (the two embeddings and the similarity label)",
    "SoftmaxWithLoss": " (the scores and the label)",
    "Accuracy": " (the scores and the label)",
}


def _line_of(source_map: Any, index: int) -> str:
    line = locate(source_map, index).line
    return f" (line {line})" if line is not None else ""


def _unknown_bottom(
    net: Any, order: list[int], pos: int, blob: str, k: int, known: Sequence[str],
    state: NetState, source_map: Any,
) -> Problem:
    """AppendBottom's 'Unknown bottom blob', with where the blob is made if anywhere."""
    index = order[pos]
    layer = net.layer[index]
    hints = []
    built = set(order)
    later = [i for i in order[pos + 1:] if blob in net.layer[i].top]
    elsewhere = [i for i, ly in enumerate(net.layer) if blob in ly.top and i not in built]
    if later:
        hints.append(f"'{blob}' is made later, by layer '{net.layer[later[0]].name}'"
                     f"{_line_of(source_map, later[0])}: move that layer up")
    elif elsewhere:
        hints.append(
            f"'{blob}' is made by layer '{net.layer[elsewhere[0]].name}'"
            f"{_line_of(source_map, elsewhere[0])}, which is not in the {state.phase} phase "
            "(check its include/exclude rules)"
        )
    close = did_you_mean(close_names(blob, known, cutoff=0.5))
    if close:
        hints.append(close)
    if not hints:  # a piece of a bigger net (a block meant to be pasted into one)?
        hints.append(f"no layer of this file makes '{blob}': if the file is a piece of a "
                     f"bigger net, paste it after the layer that makes '{blob}'; to build it "
                     f"alone, declare the blob at the top (input: \"{blob}\" input_shape "
                     f"{{ dim: N dim: C ... }}) or give its shape (--input-shape "
                     f"{blob}=N,C,...)")
    return problem(
        "C2T201",
        f"layer '{layer.name}' ({layer.type}) in the {state.phase} phase: unknown bottom blob "
        f"'{blob}' (bottom {k}): no earlier layer of this phase makes it",
        summary=f"layer '{layer.name}' reads bottom '{blob}', which no earlier layer produces",
        layer=layer.name, index=index, field="bottom", k=k, hint="; ".join(hints),
        phase=state.phase, source_map=source_map,
    )


def _include_and_exclude(net: Any, source_map: Any) -> list[Problem]:
    """NetStateRule: 'Specify either include rules or exclude rules; not both.'"""
    return [
        problem(
            "C2T203",
            f"layer '{layer.name}': specify either include rules or exclude rules, not both",
            summary=f"layer '{layer.name}' has both include and exclude rules: Caffe refuses "
            "it ('Specify either include rules or exclude rules; not both')",
            layer=layer.name, index=i, field="exclude",
            hint="keep the include rules (or the exclude rules), not both",
            source_map=source_map,
        )
        for i, layer in enumerate(net.layer)
        if has_include_and_exclude(layer)
    ]


def _type_problems(
    layer: Any, index: int, kind: LayerKind, n_tops: int, phase: str, source_map: Any,
) -> list[Problem]:
    """LayerRegistry::CreateLayer (a known type) and Layer::CheckBlobCounts."""
    name, type_ = layer.name, layer.type
    if not kind.known:
        text = f"layer '{name}': unknown layer type \"{type_}\""
        return [problem("C2T301", text, layer=name, index=index, field="type",
                        hint=kind.unknown_hint, phase=phase, source_map=source_map)]
    out = []
    nb = len(layer.bottom)
    if kind.bottoms is not None and not kind.bottoms.accepts(nb):
        why, hint = fork_bottom_count(type_, nb) or ("", None)
        out.append(problem(
            "C2T302",
            f"layer '{name}' ({type_}): takes {kind.bottoms.describe()} bottom(s), got {nb}{why}",
            summary=f"{type_} layer '{name}' takes {kind.bottoms.describe()} bottom(s), it has "
            f"{nb}{why or _BOTTOM_NOTES.get(type_, '')}",
            hint=hint, layer=name, index=index, phase=phase, source_map=source_map))
    if kind.tops is not None and not kind.tops.accepts(n_tops):
        out.append(problem(
            "C2T303",
            f"layer '{name}' ({type_}): takes {kind.tops.describe()} top(s), got {n_tops}",
            summary=f"{type_} layer '{name}' produces {kind.tops.describe()} top(s), it has "
            f"{len(layer.top)}",
            layer=name, index=index, phase=phase, source_map=source_map))
    return out


def wire_net(
    net: Any,
    state: NetState | None = None,
    *,
    kind_of: KindOf | None = None,
    source_map: Any = None,
) -> NetIR:
    """Net::Init's wiring of ``net`` (an upgraded caffe_pb2.NetParameter) for ``state``,
    with every refusal collected in ``NetIR.problems`` (in the order Caffe meets them)
    instead of raised. A layer with a problem is still wired as far as it can be (an
    unknown bottom is left out), so that later problems are found too.

    ``kind_of(type)`` tells loss and data layers apart and knows the types and their blob
    counts (the builder and the linter pass the layer registry's answer); ``source_map``
    (io.SourceMap, or any object whose ``layer(i)`` has ``start_line``/``start_col``/
    ``fields``) places the problems in the file.
    """
    state = state or NetState()
    kind_of = kind_of or default_kind
    problems = _include_and_exclude(net, source_map)
    later_problems: list[Problem] = []  # found when the layer is set up, after wiring
    order = filter_layers(net.layer, state)
    current: dict[str, BlobRef] = {}  # blob name -> its latest version
    available: set[str] = set()  # AppendBottom/AppendTop's available_blobs
    producer: dict[BlobRef, tuple[int, int]] = {}
    consumers: dict[BlobRef, list[tuple[int, int]]] = {}
    layers: list[LayerIR] = []
    inputs: list[BlobRef] = []
    for pos, index in enumerate(order):
        layer = net.layer[index]
        kind = kind_of(layer.type)
        if layer.propagate_down and len(layer.propagate_down) != len(layer.bottom):
            problems.append(problem(
                "C2T208",
                f"layer '{layer.name}': propagate_down must be given 0 or {len(layer.bottom)} "
                f"times (once per bottom), not {len(layer.propagate_down)}",
                layer=layer.name, index=index, field="propagate_down", phase=state.phase,
                source_map=source_map))
        bottoms = []
        for k, blob in enumerate(layer.bottom):
            if blob not in current:
                problems.append(_unknown_bottom(net, order, pos, blob, k, list(current), state,
                                                source_map))
                continue
            ref = current[blob]
            bottoms.append(ref)
            consumers.setdefault(ref, []).append((pos, k))
            available.discard(blob)
        tops = []
        for k, blob in enumerate(layer.top):
            if k < len(layer.bottom) and blob == layer.bottom[k] and blob in current:
                ref = BlobRef(blob, current[blob].version + 1)  # in-place
            elif blob in current:
                made_by = layers[producer[current[blob]][0]]
                problems.append(problem(
                    "C2T202",
                    f"layer '{layer.name}' ({layer.type}) in the {state.phase} phase: top blob "
                    f"'{blob}' is produced by multiple sources (layer '{made_by.name}' made it "
                    "already)",
                    summary=f"layer '{layer.name}' writes top '{blob}', which layer "
                    f"'{made_by.name}'{_line_of(source_map, made_by.index)} already produces",
                    layer=layer.name, index=index, field="top", k=k,
                    hint=f"give the top another name, or make it bottom {k} of the layer too "
                    "for an in-place layer (top k == bottom k)",
                    phase=state.phase, source_map=source_map))
                ref = BlobRef(blob, current[blob].version + 1)
            else:
                ref = BlobRef(blob, 0)
            current[blob] = ref
            producer[ref] = (pos, k)
            available.add(blob)
            tops.append(ref)
            if kind.data:
                inputs.append(ref)
        if kind.loss and not layer.top:
            # LossLayer::AutoTopBlobs: Net::Init gives it an anonymous top that no other
            # layer can use and that is not a net output, but whose loss still counts
            ref = BlobRef(f"({layer.name})", 0)
            producer[ref] = (pos, 0)
            tops.append(ref)
        later_problems += _type_problems(layer, index, kind, len(tops), state.phase,
                                         source_map)
        if layer.loss_weight and len(layer.loss_weight) != len(tops):
            problems.append(problem(
                "C2T209",
                f"layer '{layer.name}': loss_weight must be unspecified or given once per "
                f"top blob ({len(tops)}), not {len(layer.loss_weight)} times",
                layer=layer.name, index=index, field="loss_weight", phase=state.phase,
                source_map=source_map))
            weights = (0.0,) * len(tops)
        elif layer.loss_weight:
            weights = tuple(float(w) for w in layer.loss_weight)
        elif kind.loss:
            weights = (1.0,) + (0.0,) * (len(tops) - 1)  # LossLayer::LayerSetUp
        else:
            weights = (0.0,) * len(tops)
        propagate = (
            tuple(bool(p) for p in layer.propagate_down)
            if layer.propagate_down and len(layer.propagate_down) == len(layer.bottom)
            else (True,) * len(layer.bottom)
        )
        layers.append(
            LayerIR(
                index=index,
                name=layer.name,
                type=layer.type,
                bottoms=tuple(bottoms),
                tops=tuple(tops),
                loss_weights=weights,
                params=_param_decls(layer),
                propagate_down=propagate,
                kind=kind,
                proto=layer,
            )
        )
    # towers of a pairwise loss with different batch sizes: Caffe meets it at the loss
    later_problems += pair_batch_problems(net, order, state.phase, source_map)
    outputs = [current[name] for name in sorted(available)]
    return NetIR(
        name=net.name,
        state=state,
        layers=layers,
        inputs=inputs,
        outputs=outputs,
        producer=producer,
        consumers=consumers,
        force_backward=bool(net.force_backward),
        problems=problems + later_problems,
    )


def build_ir(
    net: Any,
    state: NetState | None = None,
    *,
    kind_of: KindOf | None = None,
    source_map: Any = None,
) -> NetIR:
    """:func:`wire_net`, raising the first wiring problem as a BuildError (Caffe stops at
    the first). Unknown types and blob counts stay in ``NetIR.problems``: the builder
    raises them layer by layer, after the layers before have been set up; ``draw`` shows
    such nets anyway."""
    ir = wire_net(net, state, kind_of=kind_of, source_map=source_map)
    raise_first([p for p in ir.problems if p.code not in _SETUP_CODES])
    return ir
