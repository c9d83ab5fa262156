"""The benchmarks' driver of a BVLC Caffe binary: reading its log, running it, its failures.
A stand-in script plays the binary, so no Caffe is needed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bench.caffe_reference import caffe_train, final_loss, find_caffe, training_seconds
from caffe2torch.proto import caffe_pb2

LOG = """\
I1202 23:59:58.500000 1 s.cpp:1] Iteration 0 (3.3e+14 iter/s, 0.07s/100 iters), loss = 0.141225
I1202 23:59:58.500100 1 s.cpp:1] Iteration 0, lr = 0.01
I1202 23:59:59.000000 1 s.cpp:1] Iteration 100 (26.3 iter/s, 3.79s/100 iters), loss = 0.0792524
I1203 00:00:01.250000 1 s.cpp:1] Snapshotting to binary proto file snap/x_iter_200.caffemodel
I1203 00:00:01.260000 1 s.cpp:1] Iteration 200, loss = 0.0679958
I1203 00:00:01.260100 1 s.cpp:1] Optimization Done.
"""


def test_reads_the_final_loss_and_the_training_time_across_midnight():
    assert final_loss(LOG) == pytest.approx(0.0679958)
    assert training_seconds(LOG) == pytest.approx(2.75)
    assert final_loss("no iterations") != final_loss("no iterations")  # nan
    assert training_seconds("I1202 00:00:00.0 0 x] nothing") != 0  # nan, not a time


def _fake_caffe(tmp_path: Path, body: str) -> str:
    script = tmp_path / "caffe"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _param() -> caffe_pb2.SolverParameter:
    param = caffe_pb2.SolverParameter()
    param.net = "net/train_test.prototxt"
    param.max_iter = 200
    param.snapshot = 200
    param.snapshot_prefix = "snap/x"
    return param


def test_runs_the_binary_in_the_work_folder(tmp_path: Path):
    work = tmp_path / "work"
    (work / "snap").mkdir(parents=True)
    log_body = LOG.replace("\n", "\\n")
    caffe = _fake_caffe(tmp_path, f'echo "$@" > args.txt\nprintf "{log_body}"\n'
                        "touch snap/x_iter_200.caffemodel\n")
    run = caffe_train(find_caffe(caffe), work, _param(), "solver_ref.prototxt",
                      "snap/init.caffemodel", work / "caffe.log", threads=1)
    assert (work / "args.txt").read_text().split() == [
        "train", "-solver", "solver_ref.prototxt", "-weights", "snap/init.caffemodel"]
    assert 'snapshot_prefix: "snap/x"' in (work / "solver_ref.prototxt").read_text()
    assert run.weights == work / "snap" / "x_iter_200.caffemodel"
    assert (run.iterations, run.final_loss) == (200, pytest.approx(0.0679958))
    assert run.seconds == pytest.approx(2.75)


def test_a_failed_run_says_where_its_log_is(tmp_path: Path):
    caffe = _fake_caffe(tmp_path, 'echo "F1202 net.cpp:1] Unknown layer type: Foo"\nexit 1\n')
    with pytest.raises(RuntimeError, match=r"(?s)exit 1.*Unknown layer type"):
        caffe_train(caffe, tmp_path, _param(), "s.prototxt", None, tmp_path / "caffe.log")
    with pytest.raises(FileNotFoundError, match="no Caffe executable"):
        find_caffe(str(tmp_path / "missing"))
