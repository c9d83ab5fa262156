"""bench caffe-train: the solver both tools run and the reading of their logs (no Caffe
needed: the logs are written here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import bench_caffe_train as bct
from caffe2torch.examples.siamese_demo import EXAMPLE_DIR
from caffe2torch.io import read_solver

CAFFE_LOG = """\
I1205 06:04:16.744829 10749 image_data_layer.cpp:38] Opening file train1.txt
I1205 06:04:16.748518 10749 image_data_layer.cpp:63] A total of 40000 images.
I1205 06:04:16.760778 10749 image_data_layer.cpp:38] Opening file train2.txt
I1205 06:04:16.764912 10749 image_data_layer.cpp:63] A total of 40000 images.
I1205 06:04:16.835709 10749 solver.cpp:239] Iteration 0 (10.04 iter/s, 0.056s/50 iters), loss = 0.12
I1205 06:04:18.905983 10749 solver.cpp:239] Iteration 50 (24.1 iter/s, 2.07s/50 iters), loss = 0.06
I1205 06:04:20.905983 10749 solver.cpp:239] Iteration 100 (25 iter/s, 2s/50 iters), loss = 0.05
I1205 06:04:24.905983 10749 solver.cpp:239] Iteration 200 (25 iter/s, 2s/50 iters), loss = 0.04
I1205 06:04:26.000000 10749 solver.cpp:327] Iteration 250, loss = 0.03
"""


def test_rate_between_display_lines_after_the_start() -> None:
    run = bct.parse_run(CAFFE_LOG, skip=50)
    assert run.window == (50, 200)
    assert run.rate == pytest.approx(150 / 6.0)
    assert run.losses[0] == (0, 0.12) and run.losses[-1] == (200, 0.04)
    with pytest.raises(RuntimeError, match="fewer than two"):
        bct.parse_run(CAFFE_LOG, skip=150)


def test_rate_across_midnight() -> None:
    log = ("I1205 23:59:59.000000 1 solver.cpp:239] Iteration 100 (1 iter/s), loss = 1\n"
           "I1206 00:00:01.000000 1 solver.cpp:239] Iteration 140 (1 iter/s), loss = 1\n")
    assert bct.parse_run(log, skip=100).rate == pytest.approx(20.0)


def test_caffe_lists_from_its_log() -> None:
    assert bct.caffe_lists(CAFFE_LOG) == [("train1.txt", 40000), ("train2.txt", 40000)]


def test_bench_solver_has_no_test_net_and_no_snapshot(tmp_path: Path) -> None:
    shutil.copyfile(EXAMPLE_DIR / "solver.prototxt", tmp_path / "solver.prototxt")
    path = bct.write_bench_solver(tmp_path, max_iter=300, display=25)
    param = read_solver(str(path))
    assert param.max_iter == 300 and param.display == 25
    assert not param.test_iter and not param.test_interval
    assert param.snapshot == 0 and not param.snapshot_after_train
    assert param.net == "train_test.prototxt" and (tmp_path / "snapshots").is_dir()


def test_a_loss_that_does_not_fall_is_refused() -> None:
    with pytest.raises(RuntimeError, match="did not go down"):
        bct._check_loss("ours", [(0, 0.1), (500, 0.2)])
    with pytest.raises(RuntimeError):
        bct._check_loss("ours", [(0, 0.1), (500, float("nan"))])
    bct._check_loss("ours", [(0, 0.1), (500, 0.05)])
