"""A Caffe fork's own ``caffe.proto``, compiled at run time.

Forks add fields and renumber them (SegNet's ``bn_param``, R-FCN's ``psroi_pooling_param``,
each at a number another fork uses for something else). Given the fork's
``src/caffe/proto/caffe.proto``, :func:`load_schema` compiles it with the protobuf compiler
that grpcio-tools bundles (no .proto parser of our own), loads it into a private descriptor
pool and finds its ``NetParameter``; io.translate then reads files with it and maps every
message into our schema by field name.

Compiled schemas are cached by the content hash of the .proto and the files it imports: in
this process (the last few) and on disk as a FileDescriptorSet under the user cache dir
(``$CAFFE2TORCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/caffe2torch``, else
``~/.cache/caffe2torch``); a cache that cannot be written is skipped silently.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from caffe2torch.errors import ParseError

_IMPORT_RE = re.compile(rb'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)
_MEMORY_SLOTS = 8


@dataclass(frozen=True)
class ForkSchema:
    """A compiled fork schema: its message classes by Caffe name."""

    path: str
    digest: str
    pool: Any  # descriptor_pool.DescriptorPool
    package: str
    translators: dict[tuple[str, bool], Any] = field(default_factory=dict, compare=False)

    def cls(self, name: str) -> type[Message] | None:
        """The message class ``name`` (``"NetParameter"``, ``"BlobProto"``...), or None."""
        full = f"{self.package}.{name}" if self.package else name
        try:
            return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full))
        except KeyError:
            return None

    @property
    def net(self) -> type[Message]:
        cls = self.cls("NetParameter")
        assert cls is not None  # checked by load_schema
        return cls

    def translator(self, name: str, to_ours: bool = True) -> Any:
        """The io.translate.Translator of message ``name`` (fork -> ours, or back)."""
        key = (name, to_ours)
        found = self.translators.get(key)
        if found is None:
            from caffe2torch.io.translate import Translator
            from caffe2torch.proto import caffe_pb2

            fork = cast(Descriptor, self.need(name).DESCRIPTOR)
            ours = caffe_pb2.DESCRIPTOR.message_types_by_name[name]
            found = Translator(fork, ours) if to_ours else Translator(ours, fork)
            self.translators[key] = found
        return found

    def to_ours(self, name: str, data: bytes, path: str | None = None) -> tuple[bytes, list]:
        """``data`` (message ``name`` encoded with the fork's numbers) with ours, and the
        fields only the fork has (typed ExtraField values)."""
        try:
            return self.translator(name).run(data)
        except ParseError as e:
            e.path = path
            raise

    def from_ours(self, name: str, data: bytes) -> bytes:
        """Our encoding of message ``name`` with the fork's numbers (fields the fork lacks
        are left out)."""
        return self.translator(name, to_ours=False).run(data)[0]

    @property
    def legacy_blobs(self) -> bool:
        """Whether the fork's BlobProto predates ``shape`` (Caffe before BlobShape): its
        Caffe writes every blob as num/channels/height/width, and so must we for it."""
        blob = self.cls("BlobProto")
        return blob is not None and "shape" not in blob.DESCRIPTOR.fields_by_name

    def need(self, name: str) -> type[Message]:
        cls = self.cls(name)
        if cls is None:
            raise ParseError(f"the schema defines no message {name}", path=self.path,
                             hint="give the fork's src/caffe/proto/caffe.proto")
        return cls


_MEMORY: OrderedDict[str, ForkSchema] = OrderedDict()
_LOCK = threading.Lock()


def cache_dir() -> str:
    base = os.environ.get("CAFFE2TORCH_CACHE_DIR")
    if base:
        return os.path.join(base, "schemas")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "caffe2torch", "schemas")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ParseError(f"cannot read the schema: {e.strerror or e}", path=path,
                         hint="give the fork's src/caffe/proto/caffe.proto with --proto") from None


def _digest(path: str, data: bytes) -> str:
    """sha256 over the .proto and (recursively) the files it imports from its folder."""
    h = hashlib.sha256()
    folder = os.path.dirname(path)
    seen: set[str] = set()
    todo = [(os.path.basename(path), data)]
    while todo:
        name, body = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        h.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
        for imp in _IMPORT_RE.findall(body):
            dep = imp.decode("utf-8", "replace")
            full = os.path.join(folder, dep)
            if os.path.isfile(full):
                todo.append((dep, _read(full)))
    return h.hexdigest()


SchemaLike = "str | os.PathLike[str] | ForkSchema"


def as_schema(proto: Any) -> ForkSchema | None:
    """``proto`` (None, a path or a ForkSchema) as a ForkSchema."""
    if proto is None or isinstance(proto, ForkSchema):
        return proto
    return load_schema(proto)


def load_schema(path: str | os.PathLike[str]) -> ForkSchema:
    """The compiled schema of the .proto at ``path`` (from a cache when it was compiled
    before). A .proto that does not compile, imports a missing file or has no NetParameter
    raises ParseError naming the file and line."""
    p = os.path.abspath(os.fspath(path))
    digest = _digest(p, _read(p))
    with _LOCK:
        hit = _MEMORY.get(digest)
        if hit is not None:
            _MEMORY.move_to_end(digest)
            return hit
    files = _from_disk(digest)
    if files is None:
        files = _compile(p)
        _to_disk(digest, files)
    schema = _schema(p, digest, files)
    with _LOCK:
        _MEMORY[digest] = schema
        while len(_MEMORY) > _MEMORY_SLOTS:
            _MEMORY.popitem(last=False)
    return schema


def clear_memory_cache() -> None:
    with _LOCK:
        _MEMORY.clear()


# ----------------------------------------------------------------------------- compiling


def _compile(path: str) -> descriptor_pb2.FileDescriptorSet:
    try:
        from grpc_tools import _protoc_compiler
        from grpc_tools import protoc as _protoc
    except ImportError:  # pragma: no cover - a declared dependency
        raise ParseError("reading a fork's schema needs grpcio-tools (pip install grpcio-tools)",
                         path=path) from None
    folder = os.path.dirname(path)
    includes = [folder.encode()]
    try:  # google/protobuf/*.proto, for a fork that imports them
        bundled = os.path.join(os.path.dirname(_protoc.__file__), "_proto")
        includes.append(bundled.encode())
    except (AttributeError, TypeError):  # pragma: no cover
        pass
    try:
        modules = _protoc_compiler.get_protos(os.path.basename(path).encode(), includes)
    except _protoc_compiler.ProtocErrors as e:
        raise _compile_error(path, e.errors()) from None
    out = descriptor_pb2.FileDescriptorSet()
    for _, code in modules:
        for node in ast.walk(ast.parse(code)):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") ==
                    "AddSerializedFile" and node.args):
                out.file.add().ParseFromString(ast.literal_eval(node.args[0]))
    return out


def _compile_error(path: str, errors: list[Any]) -> ParseError:
    """The compiler's first located error as a ParseError (1-based line:col)."""
    folder = os.path.dirname(path)

    def text(b: Any) -> str:
        return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)

    located = [e for e in errors if e.line >= 0] or list(errors)
    e = located[0]
    name = text(e.filename)
    full = os.path.join(folder, name) if not os.path.isabs(name) else name
    message = text(e.message).rstrip(".")
    hint = "fix the .proto, or give the fork's src/caffe/proto/caffe.proto unchanged"
    m = re.match(r'Import "(.+)" was not found', message)
    if m:
        message = f'imports "{m.group(1)}", which is not in {folder or "."}'
        hint = f"put {m.group(1)} beside {os.path.basename(path)} (imports are looked up there)"
    return ParseError(
        f"the schema does not compile: {message}",
        path=full if e.line >= 0 else path,
        line=e.line + 1 if e.line >= 0 else None,
        col=e.column + 1 if e.line >= 0 else None,
        hint=hint,
    )


def _from_disk(digest: str) -> descriptor_pb2.FileDescriptorSet | None:
    try:
        with open(os.path.join(cache_dir(), digest + ".pb"), "rb") as f:
            data = f.read()
        out = descriptor_pb2.FileDescriptorSet()
        out.ParseFromString(data)
        return out if out.file else None
    except (OSError, DecodeError):
        return None


def _to_disk(digest: str, files: descriptor_pb2.FileDescriptorSet) -> None:
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{digest}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(files.SerializeToString())
        os.replace(tmp, os.path.join(folder, digest + ".pb"))
    except OSError:
        pass  # a read-only home: compile again next time


def _schema(path: str, digest: str, files: descriptor_pb2.FileDescriptorSet) -> ForkSchema:
    pool = descriptor_pool.DescriptorPool()
    pending = list(files.file)
    added: set[str] = set()
    while pending:
        progress = False
        for fdp in list(pending):
            missing = [d for d in fdp.dependency if d not in added]
            for dep in missing:  # a well-known type: take it from protobuf's own pool
                if dep.startswith("google/protobuf/") and dep not in {f.name for f in pending}:
                    known = descriptor_pb2.FileDescriptorProto()
                    descriptor_pool.Default().FindFileByName(dep).CopyToProto(known)
                    pool.Add(known)
                    added.add(dep)
            if all(d in added for d in fdp.dependency):
                pool.Add(fdp)
                added.add(fdp.name)
                pending.remove(fdp)
                progress = True
        if not progress:
            raise ParseError("the schema's imports form a cycle", path=path)
    main = files.file[-1] if files.file else None
    for fdp in files.file:
        if fdp.name == os.path.basename(path):
            main = fdp
    package = ""
    found = False
    for fdp in files.file:
        if any(m.name == "NetParameter" for m in fdp.message_type):
            package, found = fdp.package, True
            if fdp is main:
                break
    if not found:
        raise ParseError(
            "the schema defines no message NetParameter, so it is not a Caffe schema",
            path=path, line=1, col=1,
            hint="give the fork's src/caffe/proto/caffe.proto (the file that defines "
            "NetParameter, LayerParameter and BlobProto)",
        )
    return ForkSchema(path=path, digest=digest, pool=pool, package=package)


__all__ = ["ForkSchema", "as_schema", "cache_dir", "clear_memory_cache", "load_schema"]
