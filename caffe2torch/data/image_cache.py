"""The budget of ImageData's decoded-image cache.

Caffe's ImageDataLayer decodes every listed file at every use (ReadImageToCVMat in
load_batch). An ImageListSource keeps the decoded (and resized) images instead, up to a
byte budget per source and process; the transform (crop, mirror, mean, scale) still runs
on every row. The budget:

* ``CAFFE2TORCH_IMAGE_CACHE_MB`` in MiB when set (``0`` turns the cache off);
* else ``ImageListSource.cache_bytes`` (256 MiB).

``caffe2torch train`` / ``test`` set the variable from ``--image-cache-mb``, so that data
worker processes, which start with empty caches of their own, get the same budget.
"""

from __future__ import annotations

import os

from caffe2torch.errors import DataError

CACHE_ENV = "CAFFE2TORCH_IMAGE_CACHE_MB"
DEFAULT_CACHE_BYTES = 256 * 2**20


def parse_megabytes(raw: str, what: str = CACHE_ENV) -> int:
    """``raw`` MiB (a non-negative number) as bytes; DataError when it is not one."""
    try:
        value = float(raw.strip().replace("_", ""))
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise DataError(f"{what}={raw!r} is not a size in MiB (a number >= 0)",
                        hint=f"give e.g. 512, or 0 to decode every image at every use; "
                             f"unset {CACHE_ENV} for the default "
                             f"({DEFAULT_CACHE_BYTES >> 20} MiB)")
    return int(value * 2**20)


def cache_budget(default: int = DEFAULT_CACHE_BYTES) -> int:
    """Bytes of decoded images one source may keep: the environment's choice, else
    ``default``."""
    raw = os.environ.get(CACHE_ENV)
    if raw is None or not raw.strip():
        return default
    return parse_megabytes(raw)


def set_cache_megabytes(megabytes: float) -> None:
    """The budget for sources made from now on, in this process and its children."""
    os.environ[CACHE_ENV] = f"{megabytes:g}"


__all__ = ["CACHE_ENV", "DEFAULT_CACHE_BYTES", "cache_budget", "parse_megabytes",
           "set_cache_megabytes"]
