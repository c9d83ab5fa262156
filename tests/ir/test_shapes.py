"""ir.shapes and ir.geometry (no torch): the rules the corpus sweep found disagreeing
with the builder, and the one reader of convolution and pooling settings."""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from caffe2torch.ir.geometry import ParamProblem, read_conv_geometry, read_pool_window
from caffe2torch.ir.shapes import infer, multibox_loss_problem
from caffe2torch.proto import caffe_pb2

_INPUT = ('layer { name: "in" type: "Input" top: "x" top: "w" top: "a"\n'
          '  input_param { shape { dim: 2 dim: 6 dim: 4 dim: 4 } shape { dim: 3 dim: 96 }\n'
          '                shape { dim: 2 dim: 6 dim: 1 dim: 1 } } }\n')


def parse_net_text(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def _tops(body: str) -> dict[str, tuple[int | None, ...] | None]:
    net = parse_net_text(_INPUT + body)
    return infer(list(net.layer), range(len(net.layer))).blobs


def test_normface_normalize_is_legacy_4d_with_a_norm_top() -> None:
    blobs = _tops('layer { name: "f" type: "Flatten" bottom: "x" top: "f" }\n'
                  'layer { name: "n" type: "Normalize" bottom: "f" top: "n" top: "norm" }\n'
                  'layer { name: "s" type: "Normalize" bottom: "x" top: "s"\n'
                  '        norm_param { across_spatial: false } }\n')
    assert blobs["n"] == (2, 96, 1, 1) and blobs["norm"] == (2, 1, 1, 1)
    assert blobs["s"] == (2, 6, 4, 4)  # SSD's keeps the bottom's shape


def test_inner_product_with_the_weight_as_second_bottom() -> None:
    blobs = _tops('layer { name: "ip" type: "InnerProduct" bottom: "x" bottom: "w" top: "y" }\n')
    assert blobs["y"] == (2, 3)


def test_axpy_top_is_shaped_like_x() -> None:
    blobs = _tops('layer { name: "ax" type: "Axpy" bottom: "a" bottom: "x" bottom: "x" '
                  'top: "y" }\n')
    assert blobs["y"] == (2, 6, 4, 4)


def test_only_the_first_loss_top_is_a_scalar() -> None:
    blobs = _tops('layer { name: "l" type: "GeneralContrastiveLoss" bottom: "x" bottom: "a" '
                  'top: "loss" top: "mean_distance" }\n')
    assert blobs["loss"] == () and blobs["mean_distance"] is None


def test_multibox_loss_is_a_scalar_even_before_its_bottoms_are_known() -> None:
    blobs = _tops('layer { name: "m" type: "MultiBoxLoss" bottom: "u" bottom: "v" bottom: "p" '
                  'bottom: "g" top: "mbox_loss" multibox_loss_param { num_classes: 3 } }\n')
    assert blobs["mbox_loss"] == ()


@pytest.mark.parametrize(("loc", "conf", "prior", "classes", "shared", "says"), [
    ((2, 40), (2, 30), (1, 2, 40), 3, True, None),  # 10 priors
    ((2, 120), (2, 30), (1, 2, 40), 3, False, None),  # 10 priors x 3 classes x 4
    ((2, 40), (2, 30), (1, 2, 40), 3, False, "location bottom has 40 channels, not 10"),
    ((2, 40), (2, 20), (1, 2, 40), 3, True, "confidence bottom has 20 channels"),
    ((2, 40), (3, 30), (1, 2, 40), 3, True, "differ in num"),
    ((None, 40), (2, 30), (1, 2, 40), 3, True, None),  # unknown: no verdict
    ((2, 10, 2, 2), (2, 30), (1, 2, 40), 3, True, "location bottom has 10 channels"),
])
def test_multibox_loss_bottoms(loc, conf, prior, classes: int, shared: bool,
                               says: str | None) -> None:
    problem = multibox_loss_problem(loc, conf, prior, classes, shared)
    assert (problem is None) if says is None else (says in (problem or ""))


def test_unknown_image_size_stays_unknown() -> None:
    net = parse_net_text('layer { name: "d" type: "ImageData" top: "data" top: "label"\n'
                         '  image_data_param { source: "list.txt" batch_size: 4 } }\n')
    assert infer(list(net.layer), [0]).blobs["data"] == (4, 3, None, None)
    given = {"data": (4, 3, 32, 32), "label": (4,)}
    assert infer(list(net.layer), [0], given).blobs["data"] == (4, 3, 32, 32)


@pytest.mark.parametrize("text,n,message", [
    ("kernel_size: 3 kernel_h: 3 kernel_w: 3", 2,
     "either kernel_size or kernel_h/kernel_w should be given, not both"),
    ("kernel_h: 3 kernel_w: 3", 3, "kernel_h & kernel_w can only be used for 2-D convolution"),
    ("kernel_size: 3 stride: 0", 2, "stride dimensions must be > 0, got (0, 0)"),
    ("num_output: 4", 2,
     "kernel_size must be given once or once per spatial dimension (0 given, 2 spatial dims)"),
    ("kernel_size: 3 dilation: 1 dilation: 1 dilation: 1", 2,
     "dilation must be given once or once per spatial dimension (3 given, 2 spatial dims)"),
])
def test_conv_reader_problems(text: str, n: int, message: str) -> None:
    p = text_format.Parse(text, caffe_pb2.ConvolutionParameter())
    got = read_conv_geometry(p, n)
    assert got == ParamProblem(message, "convolution_param")


def test_pool_reader() -> None:
    p = text_format.Parse("pool: MAX kernel_size: 3 pad: 3", caffe_pb2.PoolingParameter())
    got = read_pool_window(p)
    assert isinstance(got, ParamProblem) and "smaller than kernel" in got.message
    p = text_format.Parse("pool: MAX kernel_size: 3 pad: 1 stride: 2",
                          caffe_pb2.PoolingParameter())
    window = read_pool_window(p)
    assert not isinstance(window, ParamProblem)
    assert window.output_dims((7, None)) == (4, None)
