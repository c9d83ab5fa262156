"""The rest of pycaffe: modes, seeds, layer_type_list, Timer, draw, coord_map."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import caffe2torch.pycaffe as caffe
from caffe2torch.errors import CaffeError
from caffe2torch.pycaffe import coord_map, draw
from caffe2torch.pycaffe import layers as L
from caffe2torch.pycaffe.mode import MODE

NET = """name: "seeded"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
"""


@pytest.fixture
def net_file(tmp_path: Path) -> str:
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    return str(path)


def test_set_random_seed_makes_fillers_repeat(net_file: str) -> None:
    caffe.set_random_seed(5)
    a = caffe.Net(net_file, caffe.TEST).params["ip"][0].data.copy()
    caffe.set_random_seed(5)
    b = caffe.Net(net_file, caffe.TEST).params["ip"][0].data.copy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_gpu_mode_without_a_gpu_is_refused(net_file: str) -> None:
    caffe.set_mode_gpu()
    caffe.set_device(0)
    try:
        with pytest.raises(CaffeError, match="no CUDA device"):
            caffe.Net(net_file, caffe.TEST)
    finally:
        caffe.set_mode_cpu()
    assert caffe.Net(net_file, caffe.TEST).blobs["ip"].data.shape == (2, 4)


def test_solver_count_and_rank() -> None:
    caffe.set_solver_count(4)
    caffe.set_solver_rank(2)
    try:
        assert (caffe.solver_count(), caffe.solver_rank()) == (4, 2)
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
    assert MODE.solver_count == 1 and not caffe.has_nccl()


def test_layer_type_list() -> None:
    types = caffe.layer_type_list()
    assert {"Convolution", "Data", "Python", "TripletLoss", "Normalize"} <= set(types)
    assert types == sorted(types)


def test_timer() -> None:
    t = caffe.Timer()
    t.start()
    time.sleep(0.01)
    t.stop()
    assert 5 <= t.ms < 1000 and t.seconds == pytest.approx(t.ms / 1e3)


def test_draw_dot_text_every_phase(net_file: str) -> None:
    from caffe2torch.io import read_net

    param = read_net(net_file)
    text = draw.draw_net(param, "TB", ext="dot").decode()
    assert "rankdir=TB" in text and "(InnerProduct)" in text and '"data"' in text
    with pytest.raises(CaffeError, match="rankdir"):
        draw.draw_net(param, "XY", ext="dot")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_draw_png(net_file: str, tmp_path: Path) -> None:
    from caffe2torch.io import read_net

    out = tmp_path / "net.png"
    draw.draw_net_to_file(read_net(net_file), str(out), "LR", phase=caffe.TEST)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_coord_map_crop() -> None:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 64, 64]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=3, pad=10)
    n.up = L.Deconvolution(L.Pooling(n.conv, kernel_size=2, stride=2), num_output=2,
                           kernel_size=4, stride=2)
    ax, a, b = coord_map.coord_map_from_to(n.up, n.data)
    assert ax == 1 and (a == 1).all()
    n.crop = coord_map.crop(n.up, n.data)
    layer = n.to_proto().layer[-1]
    assert layer.type == "Crop" and layer.crop_param.axis == 2
    assert list(layer.crop_param.offset) == [int(-b[0])]


def test_set_logging_disabled_leaves_only_errors() -> None:
    # lmb-freiburg/flownet2's run-flownet.py calls caffe.set_logging_disabled() (that
    # fork's Caffe::set_logging(false): glog's minloglevel 2) before building the net
    import logging

    log = logging.getLogger("caffe")
    before = log.level
    try:
        caffe.init_log(0)
        caffe.set_logging_disabled()
        assert not log.isEnabledFor(logging.WARNING) and log.isEnabledFor(logging.ERROR)
        assert caffe._caffe.set_logging_disabled is caffe.set_logging_disabled
    finally:
        log.setLevel(before)
