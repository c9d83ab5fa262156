"""bench --caffe: the timing nets both tools read, and the reading of their logs. A
stand-in script plays `caffe time`, so no Caffe is needed."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

import caffe2torch as c2t
from bench import bench_caffe
from caffe2torch.io import read_net

LOG = """\
I1205 03:11:41.2 1 caffe.cpp:404]      conv1\tforward: 12.5 ms.
I1205 03:11:41.2 1 caffe.cpp:407]      conv1\tbackward: 20.25 ms.
I1205 03:11:41.2 1 caffe.cpp:412] Average Forward-Backward: 1959 ms.
"""


@pytest.mark.parametrize("case", bench_caffe.cases(), ids=lambda c: c.name)
def test_timing_net_has_the_case_inputs_and_forces_backward(case, tmp_path: Path) -> None:
    if not os.path.exists(case.prototxt):
        pytest.skip(f"{case.prototxt} is absent")
    path = tmp_path / "net.prototxt"
    bench_caffe.write_timing_net(case, path)
    param = read_net(path)
    assert param.force_backward
    assert [ly.type for ly in param.layer].count("Input") == 1
    net = c2t.load_net(path, phase="TRAIN")
    shapes = net.blob_shapes
    for top, shape in case.inputs.items():
        assert shapes[top] == shape


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_reads_the_total_and_the_layer_times(tmp_path: Path) -> None:
    fake = tmp_path / "caffe"
    fake.write_text(f"#!{sys.executable}\nimport sys\nsys.stderr.write({LOG!r})\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    run = bench_caffe._run([str(fake), "time"], dict(os.environ))
    assert run.ms == 1959.0
    assert run.layers == {"conv1": pytest.approx(32.75)}
    # the command's own peak, not this (larger) process's, which fork and exec carry over
    assert 0 < run.peak_rss_mb < _peak_rss_mb()
    bad = tmp_path / "bad"
    bad.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3)\n")
    bad.chmod(bad.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(RuntimeError, match="exit 3"):
        bench_caffe._run([str(bad)], dict(os.environ))


def test_samples_the_commands_peak_anonymous_memory(tmp_path: Path) -> None:
    # a fake tool that writes 64 MB of its own memory, holds it, and frees it before exit
    fake = tmp_path / "caffe"
    fake.write_text(f"#!{sys.executable}\nimport sys, time\n"
                    "block = bytearray(64 * 1024 * 1024)\n"
                    "block[::4096] = b'x' * (len(block) // 4096)\n"
                    "time.sleep(0.3)\ndel block\n"
                    f"sys.stderr.write({LOG!r})\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    run = bench_caffe._run([str(fake), "time"], dict(os.environ))
    assert 64 <= run.peak_anon_mb < 64 + 40  # the block, plus the interpreter's own
    assert run.peak_anon_mb <= run.peak_rss_mb
