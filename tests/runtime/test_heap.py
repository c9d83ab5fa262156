"""runtime.heap: freed blocks stay in the heap for the next pass, unless the user chose."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from caffe2torch.runtime.heap import keep_freed_memory, user_tuned

glibc_only = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")

# A 24 MB tensor (above glibc's default mmap threshold, below the raised one) is written
# and freed; the anonymous memory of the process is read before and after the free. Then
# 20 more such blocks are written and freed one after another, with small allocations
# between them (as a pass makes): the memory read after the 10th and after the 20th.
_PROBE = """
import json
import torch
from caffe2torch.runtime.heap import keep_freed_memory

def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

applied = keep_freed_memory()
block = torch.ones(6 * 1024 * 1024)
held = anon_mb()
del block
freed = anon_mb()
reads = []
for _ in range(20):
    block = torch.ones(6 * 1024 * 1024)
    small = [object() for _ in range(100)]
    del block
    reads.append(anon_mb())
print(json.dumps({"applied": applied, "held": held, "freed": freed,
                  "tenth": reads[9], "twentieth": reads[19]}))
"""


def _probe(**env: str) -> dict[str, float]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("MALLOC_") and k != "CAFFE2TORCH_KEEP_HEAP"}
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          env=dict(environ, **env), timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_a_freed_block_stays_in_the_heap_and_the_heap_settles() -> None:
    got = _probe()
    assert got["applied"] is True
    assert got["held"] - got["freed"] < 4  # the 24 MB stay resident after the free
    # blocks split by small allocations are not reused whole (glibc's fragmentation), but
    # the heap settles: the later blocks take freed memory, they do not add to it
    assert got["twentieth"] - got["tenth"] < 4


@glibc_only
def test_turned_off_the_block_goes_back_to_the_kernel() -> None:
    got = _probe(CAFFE2TORCH_KEEP_HEAP="0")
    assert got["applied"] is False
    assert got["held"] - got["freed"] > 20  # glibc's default: unmapped on free


@pytest.mark.parametrize("environ, tuned", [
    ({}, False),
    ({"CAFFE2TORCH_KEEP_HEAP": "1"}, False),
    ({"CAFFE2TORCH_KEEP_HEAP": "0"}, True),
    ({"MALLOC_ARENA_MAX": "2"}, True),
    ({"MALLOC_MMAP_THRESHOLD_": "65536"}, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, True),
    ({"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=512"}, False),
])
def test_the_users_own_allocator_settings_are_left_alone(environ: dict[str, str],
                                                        tuned: bool) -> None:
    assert user_tuned(environ) is tuned


def test_nothing_is_applied_when_the_user_tuned_malloc() -> None:
    # in this process it may already be applied (returns True): ask with a fresh flag
    import caffe2torch.runtime.heap as heap

    applied, heap._done = heap._done, False
    try:
        assert keep_freed_memory({"MALLOC_TOP_PAD_": "0"}) is False
    finally:
        heap._done = applied
