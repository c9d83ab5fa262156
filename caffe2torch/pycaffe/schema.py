"""The Caffe schema pycaffe speaks: caffe2torch's own, or a fork's ``caffe.proto``.

A pycaffe built from a Caffe fork has that fork's generated ``caffe_pb2``: a script edits
prototxt with it (``text_format.Merge(text, caffe_pb2.NetParameter())``), and the fork's
``caffe.Net`` reads nets and caffemodels with its field numbers. ``use(path)`` gives this
package the same behaviour for one process (``caffe2torch run --proto PATH``): the
compiled fork schema (io.fork_schema) becomes ``caffe.proto.caffe_pb2``, and Net, the
solvers, net_spec and caffe.io read and write with it.
"""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType
from typing import Any

from google.protobuf import message_factory
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from caffe2torch.io.fork_schema import ForkSchema, as_schema
from caffe2torch.proto import caffe_pb2 as _ours

_PB2_NAME = "caffe2torch.pycaffe.proto.caffe_pb2"  # what `caffe.proto.caffe_pb2` resolves to
_LOCK = threading.Lock()
_active: ForkSchema | None = None
_modules: dict[str, ModuleType] = {}  # schema digest -> its generated-module stand-in


def active() -> ForkSchema | None:
    """The fork schema in use, or None for caffe2torch's own."""
    return _active


def caffe_pb2() -> ModuleType:
    """The ``caffe_pb2`` module of the schema in use."""
    return _ours if _active is None else module_of(_active)


def use(proto: str | os.PathLike[str] | ForkSchema | None) -> ForkSchema | None:
    """Speak the schema of the fork's ``caffe.proto`` at ``proto`` (None: ours again) from
    now on in this process; returns the schema used before. A .proto that does not compile
    raises ParseError (file, line) before anything changes."""
    global _active
    schema = as_schema(proto)
    module = _ours if schema is None else module_of(schema)
    previous = caffe_pb2()
    before, _active = _active, schema
    import caffe2torch.pycaffe.proto as package

    package.caffe_pb2 = module
    sys.modules[_PB2_NAME] = module
    if sys.modules.get("caffe.proto.caffe_pb2") is previous:  # the import hook handed it out
        sys.modules["caffe.proto.caffe_pb2"] = module
    return before


def module_of(schema: ForkSchema) -> ModuleType:
    """A module like protoc's ``caffe_pb2`` for ``schema``: its messages and top-level
    enums (with their values as module constants, as generated code has them) and
    ``DESCRIPTOR``, the file that defines NetParameter."""
    with _LOCK:
        found = _modules.get(schema.digest)
    if found is not None:
        return found
    file = schema.pool.FindMessageTypeByName(_full(schema, "NetParameter")).file
    module = ModuleType(_PB2_NAME,
                        f"The schema compiled from {schema.path} (caffe2torch run --proto).")
    module.DESCRIPTOR = file  # type: ignore[attr-defined]
    for name, desc in file.message_types_by_name.items():
        setattr(module, name, message_factory.GetMessageClass(desc))
    for name, enum in file.enum_types_by_name.items():
        setattr(module, name, EnumTypeWrapper(enum))
        for value in enum.values:
            setattr(module, value.name, value.number)
    with _LOCK:
        return _modules.setdefault(schema.digest, module)


def is_ours(message: Any) -> bool:
    """Whether ``message`` is of caffe2torch's own schema (not a fork's)."""
    desc = getattr(message, "DESCRIPTOR", None)
    return desc is not None and desc.file is _ours.DESCRIPTOR


def _full(schema: ForkSchema, name: str) -> str:
    return f"{schema.package}.{name}" if schema.package else name


__all__ = ["active", "caffe_pb2", "is_ours", "module_of", "use"]
