"""The codegen vocabulary of `convert`'s standalone source, below the layer families.

Each layer family module writes its own standalone source next to its module classes:
``@emitter(CaffeReLU)`` registers the function that turns one built module of that class
into lines of plain ``torch.nn.functional`` code with constants (an emitter reads the
module's settings and the net's static shapes); a Caffe rule with no single torch call is a
call of the layer's own functional core, whose source goes into the file
(caffe2torch.layers.portable). Emitters are looked up by ``type(module)``, so fork layer
types that build a BVLC module (ConvolutionDepthwise -> CaffeConvolution) are covered too.
The one-place rule (tests/layers/test_emitters.py): an emitter lives in the module that
defines the class it writes. export/standalone.py walks the net and calls them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from caffe2torch.errors import ExportError
from caffe2torch.layers.portable import portable_object
from caffe2torch.numerics import as_f32

if TYPE_CHECKING:
    from caffe2torch.ir.graph import LayerIR

Shape = tuple[int, ...]


@dataclass
class ModuleSource:
    """What the generated module is made of, filled by the emitters. ``identifier`` makes a
    Python identifier of a Caffe name (the driver passes graph.names.identifier: layers sit
    below graph)."""

    identifier: Callable[[str], str]
    init: list[str] = field(default_factory=list)  # lines of __init__ (after super())
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # state_dict of the module
    helpers: list[str] = field(default_factory=list)  # portable names, first use order
    attrs: set[str] = field(default_factory=set)
    by_tensor: dict[int, str] = field(default_factory=dict)  # id(Parameter) -> attribute

    def fresh(self, base: str) -> str:
        name, n = self.identifier(base), 1
        while name in self.attrs or name in _RESERVED_ATTRS:
            n += 1
            name = f"{self.identifier(base)}_{n}"
        self.attrs.add(name)
        return name


_RESERVED_ATTRS = frozenset({"forward", "inputs", "outputs", "training"})


@dataclass
class Emit:
    """One layer being written: its module, static shapes and variable names."""

    layer: LayerIR
    # The layer's module, an instance of the class its emitter was registered for (emitters
    # are looked up by type(module)), so each emitter reads that class's own attributes.
    module: Any
    bottoms: list[str]  # variable names of the bottoms
    tops: list[str]  # variable names of the tops
    bottom_shapes: list[Shape]
    top_shapes: list[Shape]
    out: ModuleSource
    base: str  # identifier made from the layer name

    def param(self, index: int, what: str) -> str:
        """``self.<attr>`` of the module's blob ``index`` (one attribute per shared param)."""
        blob = self.module.blobs[index]
        key = id(blob)
        if key not in self.out.by_tensor:
            attr = self.out.fresh(f"{self.base}_{what}")
            self.out.by_tensor[key] = attr
            dims = ", ".join(str(d) for d in blob.shape) or "()"
            grad = "" if blob.requires_grad else ", requires_grad=False"
            self.out.init.append(f"self.{attr} = nn.Parameter(torch.empty({dims}){grad})")
            self.out.state[attr] = blob.detach().clone()
        return f"self.{self.out.by_tensor[key]}"

    def buffer(self, value: torch.Tensor, what: str) -> str:
        attr = self.out.fresh(f"{self.base}_{what}")
        dims = ", ".join(str(d) for d in value.shape) or "()"
        self.out.init.append(f"self.register_buffer({attr!r}, torch.empty({dims}))")
        self.out.state[attr] = value.detach().clone()
        return f"self.{attr}"

    def use(self, helper: str) -> None:
        """Put the portable object ``helper`` (and what it uses) into the file."""
        portable_object(helper)  # a KeyError here is a bug of the emitter
        if helper not in self.out.helpers:
            self.out.helpers.append(helper)

    def local(self, what: str) -> str:
        """A new local variable of forward for this layer (a leading _ keeps it apart from
        the blob variables)."""
        return self.out.fresh(f"_{self.base}_{what}")

    def call(self, helper: str, args: str) -> str:
        """``helper(args)``, with the portable function ``helper`` put into the file."""
        self.use(helper)
        return f"{helper}({args})"

    def submodule(self, helper: str, args: str) -> str:
        """``self.<attr>``, a new instance ``helper(args)`` of a portable module class."""
        self.use(helper)
        attr = self.out.fresh(self.base)
        self.out.init.append(f"self.{attr} = {helper}({args})")
        return f"self.{attr}"

    def unsupported(self, why: str) -> ExportError:
        return ExportError(
            f"layer '{self.layer.name}' ({self.layer.type}): no standalone source for {why}",
            hint="convert the part before it with --outputs BLOB, or keep using caffe2torch "
            "for this net",
        )

    def assign(self, expr: str) -> list[str]:
        return [f"{self.tops[0]} = {expr}"]

    def assign_leading(self, call: str) -> list[str]:
        """The tops from ``call``, which returns a tuple (the tops first): its first value
        for a one-top layer, else as many values as the layer has tops."""
        if len(self.tops) == 1:
            return self.assign(f"{call}[0]")
        return [f"{', '.join(self.tops)} = {call}[:{len(self.tops)}]"]


Emitter = Callable[[Emit], list[str]]
_EMITTERS: dict[type, Emitter] = {}


def emitter(*classes: type) -> Callable[[Emitter], Emitter]:
    """Register the decorated function as the standalone source of modules of ``classes``
    (one emitter per class; write it in the module that defines the class)."""

    def register(fn: Emitter) -> Emitter:
        for cls in classes:
            known = _EMITTERS.get(cls)
            if known is not None and _name(known) != _name(fn):
                raise ValueError(
                    f"{cls.__qualname__} already has the emitter {_name(known)}; "
                    f"not registering {_name(fn)}"
                )
            _EMITTERS[cls] = fn
        return fn

    return register


def _name(fn: Emitter) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def emitter_for(cls: type) -> Emitter | None:
    """The emitter registered for module class ``cls`` (None: convert cannot write it)."""
    return _EMITTERS.get(cls)


def emitters() -> dict[type, Emitter]:
    """Every registered module class and its emitter (a copy)."""
    return dict(_EMITTERS)


def num(value: float) -> str:
    """A float constant as the shortest text that reads back as the same float32."""
    text = repr(as_f32(value))
    return text[:-2] if text.endswith(".0") else text


def tup(values: Sequence[int]) -> str:
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        return str(values[0])
    return "(" + ", ".join(map(str, values)) + ")"


def nondefault_kwargs(pairs: Sequence[tuple[str, str, str]]) -> str:
    """``, name=value`` for each (name, value, default) where value != default."""
    return "".join(f", {k}={v}" for k, v, d in pairs if v != d)
