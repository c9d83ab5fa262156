"""Keep the memory a pass frees in the process heap for the next pass, as Caffe does.

Caffe allocates each blob's data and diff once (SyncedMemory) and writes into them at every
iteration. PyTorch on the CPU allocates each activation and gradient afresh through the C
library's ``malloc``, and glibc gives large blocks straight back to the kernel: a block
above the mmap threshold is its own mapping, unmapped on free, and a free top of the heap
above the trim threshold is released. The next pass then takes a page fault and a page of
zeroes from the kernel for every 4 KB it writes. :func:`keep_freed_memory` raises both
thresholds with ``mallopt`` so that freed blocks stay in the heap and are reused. Measured
with ``caffe2torch time`` on a 2-core machine, median over 6-8 interleaved pairs of
processes: the seed Siamese b4 5-6% faster, LeNet b64, GoogLeNet b4 and ResNet-50 b2 0-5%
(within the machine's noise in some runs). The price is glibc's fragmentation: a freed
block that a small allocation splits is not reused whole, so the heap settles higher than
the live memory: GoogLeNet b4 training at 599 MB after 15 steps against 586 MB, the peak
of each net's first steps unchanged; in the worst pattern, one 24 MB block written and
freed at a time between small allocations, the heap held seven such blocks before it
stopped growing. Blocks above 32 MB are mapped and unmapped as before.

``caffe2torch time``, ``train``, ``test`` and ``demo`` call it; a program of its own can
too. It acts only where glibc's ``mallopt`` exists, and not when the user has tuned glibc's
allocator (any ``MALLOC_*`` variable, or ``GLIBC_TUNABLES`` naming ``malloc``) or set
``CAFFE2TORCH_KEEP_HEAP=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Mapping

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# glibc's ceiling for the mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX):
# larger blocks are always mapped on their own
MMAP_THRESHOLD = 32 * 1024 * 1024
# the free top of the heap is never given back while the process runs
TRIM_THRESHOLD = 2**31 - 1
# the heap grows in steps of this much address space (pages are only used when written)
TOP_PAD = 64 * 1024 * 1024

_done = False


def user_tuned(environ: Mapping[str, str]) -> bool:
    """Whether the user chose glibc's allocator settings or turned this off."""
    if environ.get("CAFFE2TORCH_KEEP_HEAP", "1") == "0":
        return True
    if any(name.startswith("MALLOC_") for name in environ):
        return True
    return "malloc" in environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory(environ: Mapping[str, str] = os.environ) -> bool:
    """Raise glibc's mmap and trim thresholds for the rest of the process; returns whether
    the settings were applied (now or by an earlier call)."""
    global _done
    if _done:
        return True
    if user_tuned(environ):
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    _done = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD)))
    return _done


def _glibc_mallopt() -> ctypes._NamedFuncPointer | None:
    """glibc's ``mallopt`` from the C library this process runs on, or None."""
    if os.name != "posix":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # musl, BSD, macOS: another malloc
            return None
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


__all__ = ["MMAP_THRESHOLD", "TOP_PAD", "TRIM_THRESHOLD", "keep_freed_memory", "user_tuned"]
