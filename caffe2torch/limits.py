"""Resource limits for files that may come from anyone.

A prototxt of a few bytes can ask for a terabyte (``num_output: 999999999999``) and a text
file can hold a million layers. Before the work or the allocation starts, these limits
turn such requests into typed errors that name the layer and the size.

* ``CAFFE2TORCH_MAX_BLOB_BYTES`` (default 8 GiB): the largest single parameter blob the
  builder creates or a weights file may hold. ``with blob_limit(n):`` (or
  ``load_net(..., max_blob_bytes=n)``) sets it for a block of code.
* ``CAFFE2TORCH_MAX_LAYERS`` (default 50000): the most layer blocks a net may have; the
  deepest published Caffe nets have a few thousand.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from caffe2torch.errors import BuildError, CaffeError, ParseError

MAX_BLOB_BYTES_ENV = "CAFFE2TORCH_MAX_BLOB_BYTES"
MAX_LAYERS_ENV = "CAFFE2TORCH_MAX_LAYERS"
DEFAULT_MAX_BLOB_BYTES = 8 << 30
DEFAULT_MAX_LAYERS = 50_000

_blob_override: ContextVar[int | None] = ContextVar("c2t_max_blob_bytes", default=None)
_LAYER_BLOCK = re.compile(r"\blayers?\s*:?\s*[{<]")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        value = -1
    if value <= 0:
        raise CaffeError(f"{name}={raw!r} is not a positive whole number",
                         hint=f"unset it to use the default ({default})")
    return value


def max_blob_bytes() -> int:
    """The largest parameter blob, in bytes, that may be created or read."""
    override = _blob_override.get()
    return override if override is not None else _env_int(MAX_BLOB_BYTES_ENV,
                                                          DEFAULT_MAX_BLOB_BYTES)


def max_layers() -> int:
    """The most layer blocks a net may have."""
    return _env_int(MAX_LAYERS_ENV, DEFAULT_MAX_LAYERS)


@contextlib.contextmanager
def blob_limit(n_bytes: int) -> Iterator[None]:
    """Use ``n_bytes`` as the blob limit inside the block (this thread / task only)."""
    if int(n_bytes) <= 0:
        raise CaffeError(f"max_blob_bytes must be positive, not {n_bytes}")
    token = _blob_override.set(int(n_bytes))
    try:
        yield
    finally:
        _blob_override.reset(token)


def human_bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def describe_bytes(n: int) -> str:
    """``1.5 GiB (1610612736 bytes)``, or ``512 bytes``."""
    return f"{human_bytes(n)} ({n} bytes)" if n >= 1024 else f"{n} bytes"


def check_blob(
    shape: Sequence[int],
    *,
    what: str = "a parameter blob",
    itemsize: int = 4,
    error: type[CaffeError] = BuildError,
    path: str | None = None,
) -> None:
    """Raise ``error`` when a blob of ``shape`` would need more than the limit (checked
    with Python integers, before anything is allocated)."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise error(f"{what} has a negative dimension: shape {dims}", path=path)
    n_bytes = math.prod(dims) * itemsize
    check_bytes(n_bytes, what=f"{what} of shape {dims}", error=error, path=path)


def check_bytes(
    n_bytes: int, *, what: str, error: type[CaffeError] = BuildError, path: str | None = None,
) -> None:
    limit = max_blob_bytes()
    if n_bytes > limit:
        raise error(
            f"{what} would need {describe_bytes(n_bytes)}, more than the "
            f"limit of {human_bytes(limit)}",
            path=path,
            hint=f"check the sizes in the file; to allow larger blobs set "
                 f"{MAX_BLOB_BYTES_ENV} (bytes)",
        )


def count_layer_blocks(text: str) -> int:
    """An upper bound on the layer blocks of a net text (``layer {`` / ``layers {``,
    comments included), found without parsing."""
    return sum(1 for _ in _LAYER_BLOCK.finditer(text))


def check_layer_count(
    n: int, *, path: str | None = None, error: type[CaffeError] = BuildError
) -> None:
    limit = max_layers()
    if n > limit:
        raise error(
            f"the net has {n} layer blocks, more than the limit of {limit}",
            path=path,
            hint=f"to allow more set {MAX_LAYERS_ENV}",
        )


def check_text(text: str, path: str | None = None) -> None:
    """Refuse a net text with more layer blocks than the limit, before parsing it."""
    limit = max_layers()
    if len(text) // 8 > limit:  # a layer block takes at least 8 characters
        n = count_layer_blocks(text)
        check_layer_count(n, path=path, error=ParseError)


__all__ = [
    "DEFAULT_MAX_BLOB_BYTES",
    "DEFAULT_MAX_LAYERS",
    "MAX_BLOB_BYTES_ENV",
    "MAX_LAYERS_ENV",
    "blob_limit",
    "check_blob",
    "check_bytes",
    "check_layer_count",
    "check_text",
    "count_layer_blocks",
    "describe_bytes",
    "human_bytes",
    "max_blob_bytes",
    "max_layers",
]
