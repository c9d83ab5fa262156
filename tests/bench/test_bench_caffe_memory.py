"""bench caffe-memory: the training nets both tools train (no Caffe needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import caffe2torch as c2t
from bench import bench_caffe, bench_caffe_memory
from caffe2torch.io import read_net


@pytest.mark.parametrize("case", bench_caffe.cases(), ids=lambda c: c.name)
def test_training_net_is_fed_by_dummy_data_and_has_a_loss(case, tmp_path: Path) -> None:
    if not os.path.exists(case.prototxt):
        pytest.skip(f"{case.prototxt} is absent")
    path = tmp_path / "net.prototxt"
    bench_caffe_memory.write_training_net(case, path)
    param = read_net(path)
    types = [ly.type for ly in param.layer]
    assert types[0] == "DummyData" and types.count("DummyData") == 1
    assert not set(types[1:]) & bench_caffe.DATA_TYPES
    assert any(t.endswith("Loss") for t in types)
    net = c2t.load_net(path, phase="TRAIN")
    for top, shape in case.inputs.items():
        assert net.blob_shapes[top] == shape
    assert net.loss_weights  # something to train on


def test_the_solver_trains_the_net(tmp_path: Path) -> None:
    case = bench_caffe.cases()[0]  # LeNet: a deploy net, its Softmax turned into a loss
    if not os.path.exists(case.prototxt):
        pytest.skip(f"{case.prototxt} is absent")
    net = tmp_path / "net.prototxt"
    bench_caffe_memory.write_training_net(case, net)
    solver_path = tmp_path / "solver.prototxt"
    bench_caffe_memory.write_solver(net, solver_path, 2)
    solver = c2t.get_solver(str(solver_path))
    solver.solve()
    assert solver.iter == 2
    assert "SoftmaxWithLoss" in [ly.type for ly in read_net(net).layer]
