"""`convert` covers every layer family: small nets built here, converted, run in a fresh
interpreter without caffe2torch, and compared with the caffe2torch net (no ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffe2torch.errors import ExportError
from caffe2torch.export.standalone import convert_net
from tests.export._standalone import NetCase, check_cases

RNG = np.random.default_rng(0)


def uniform(*shape: int) -> np.ndarray:
    return RNG.uniform(-1, 1, shape).astype(np.float32)


def labels(n: int, classes: int, *extra: int) -> np.ndarray:
    return RNG.integers(0, classes, (n, *extra)).astype(np.float32)


def inputs(*specs: tuple[str, tuple[int, ...]]) -> str:
    tops = " ".join(f'top: "{name}"' for name, _ in specs)
    shapes = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for _, s in specs)
    return f'layer {{ name: "in" type: "Input" {tops} input_param {{ {shapes} }} }}\n'


LOSSES = [
    NetCase(
        "softmax_loss_accuracy",
        inputs(("data", (6, 4)), ("label", (6,)))
        + """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        top: "prob" loss_param { ignore_label: 2 } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc"
        top: "per_class" accuracy_param { top_k: 2 } }
""",
        {"data": uniform(6, 4), "label": labels(6, 5)},
        keep_losses=True,
    ),
    NetCase(
        "spatial_softmax_loss_full",
        inputs(("data", (2, 3, 2, 2)), ("label", (2, 2, 2)))
        + """
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss"
        loss_param { normalization: FULL } }
layer { name: "acc" type: "Accuracy" bottom: "data" bottom: "label" top: "acc" }
""",
        {"data": uniform(2, 3, 2, 2), "label": labels(2, 3, 2, 2)},
        keep_losses=True,
    ),
    NetCase(
        "euclidean_sigmoid_hinge",
        inputs(("data", (4, 6)), ("target", (4, 6)), ("label", (4,)))
        + """
layer { name: "euclid" type: "EuclideanLoss" bottom: "data" bottom: "target" top: "euclid" }
layer { name: "sce" type: "SigmoidCrossEntropyLoss" bottom: "data" bottom: "target"
        top: "sce" loss_param { ignore_label: 1 normalization: VALID } }
layer { name: "hinge" type: "HingeLoss" bottom: "data" bottom: "label" top: "hinge"
        hinge_loss_param { norm: L2 } }
""",
        {"data": uniform(4, 6) * 3, "target": labels(4, 2, 6), "label": labels(4, 6)},
        keep_losses=True,
    ),
    NetCase(
        "infogain_multinomial",
        inputs(("data", (5, 3)), ("label", (5,)), ("H", (1, 1, 3, 3)))
        + """
layer { name: "info" type: "InfogainLoss" bottom: "data" bottom: "label" bottom: "H"
        top: "info" top: "info_prob" }
layer { name: "prob" type: "Softmax" bottom: "data" top: "prob" }
layer { name: "mlr" type: "MultinomialLogisticLoss" bottom: "prob" bottom: "label"
        top: "mlr" }
layer { name: "quiet" type: "Silence" bottom: "info_prob" }
""",
        {"data": uniform(5, 3), "label": labels(5, 3), "H": RNG.uniform(0, 1, (1, 1, 3, 3))
         .astype(np.float32)},
        keep_losses=True,
    ),
    NetCase(
        "contrastive",
        inputs(("a", (6, 3)), ("b", (6, 3)), ("sim", (6,)))
        + """
layer { name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "sim" top: "c"
        contrastive_loss_param { margin: 1.5 } }
layer { name: "legacy" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "sim"
        top: "legacy" contrastive_loss_param { margin: 2 legacy_version: true } }
""",
        {"a": uniform(6, 3), "b": uniform(6, 3), "sim": labels(6, 2)},
        keep_losses=True,
    ),
]

LAYERS = [
    NetCase(
        "argmax_embed_mvn",
        inputs(("data", (2, 3, 4, 5)), ("words", (2, 3)))
        + """
layer { name: "arg" type: "ArgMax" bottom: "data" top: "arg"
        argmax_param { top_k: 2 out_max_val: true } }
layer { name: "arg1" type: "ArgMax" bottom: "data" top: "arg1" argmax_param { axis: 1 } }
layer { name: "embed" type: "Embed" bottom: "words" top: "embed"
        embed_param { num_output: 4 input_dim: 7 } }
layer { name: "mvn" type: "MVN" bottom: "data" top: "mvn" }
layer { name: "mvn_mean" type: "MVN" bottom: "data" top: "mvn_mean"
        mvn_param { normalize_variance: false across_channels: true } }
""",
        {"data": np.round(uniform(2, 3, 4, 5), 1), "words": labels(2, 7, 3)},
    ),
    NetCase(
        "spp_im2col",
        inputs(("data", (2, 3, 7, 9)))
        + """
layer { name: "spp" type: "SPP" bottom: "data" top: "spp" spp_param { pyramid_height: 3 } }
layer { name: "spp_ave" type: "SPP" bottom: "data" top: "spp_ave"
        spp_param { pyramid_height: 2 pool: AVE } }
layer { name: "cols" type: "Im2col" bottom: "data" top: "cols"
        convolution_param { kernel_size: 3 stride: 2 pad: 1 } }
""",
        {"data": uniform(2, 3, 7, 9)},
    ),
    NetCase(
        "dummy_parameter",
        inputs(("data", (2, 3)))
        + """
layer { name: "const" type: "DummyData" top: "const"
        dummy_data_param { shape { dim: 2 dim: 3 } data_filler { type: "constant" value: 0.5 } } }
layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "const" bottom: "p" top: "sum" }
""",
        {"data": uniform(2, 3)},
    ),
    NetCase(
        "lstm_rnn_unit",
        inputs(("x", (4, 2, 3)), ("cont", (4, 2)), ("c0", (1, 2, 5)), ("gates", (1, 2, 20)),
               ("cont1", (1, 2)))
        + """
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
        recurrent_param { num_output: 5 } }
layer { name: "rnn" type: "RNN" bottom: "x" bottom: "cont" top: "o"
        recurrent_param { num_output: 4 } }
layer { name: "unit" type: "LSTMUnit" bottom: "c0" bottom: "gates" bottom: "cont1"
        top: "c1" top: "h1" }
""",
        {"x": uniform(4, 2, 3), "cont": np.array([[0, 0], [1, 1], [1, 0], [1, 1]], np.float32),
         "c0": uniform(1, 2, 5), "gates": uniform(1, 2, 20), "cont1": np.array([[1, 0]],
                                                                                np.float32)},
    ),
]

FORKS = [
    NetCase(
        "ssd_parts",
        inputs(("data", (2, 4, 5, 6)), ("image", (2, 3, 40, 48)))
        + """
layer { name: "norm" type: "Normalize" bottom: "data" top: "norm"
        norm_param { across_spatial: false channel_shared: false } }
layer { name: "norm_all" type: "Normalize" bottom: "data" top: "norm_all" norm_param { } }
layer { name: "perm" type: "Permute" bottom: "norm" top: "perm"
        permute_param { order: 0 order: 2 order: 3 order: 1 } }
layer { name: "prior" type: "PriorBox" bottom: "data" bottom: "image" top: "prior"
        prior_box_param { min_size: 10 max_size: 20 aspect_ratio: 2 clip: true
                          variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }
""",
        {"data": uniform(2, 4, 5, 6), "image": uniform(2, 3, 40, 48)},
    ),
    NetCase(
        "segmentation_mobile",
        inputs(("data", (2, 4, 5, 6)), ("a", (2, 4, 1, 1)))
        + """
layer { name: "interp" type: "Interp" bottom: "data" top: "interp"
        interp_param { zoom_factor: 2 } }
layer { name: "crop_interp" type: "Interp" bottom: "data" top: "crop_interp"
        interp_param { height: 7 width: 4 pad_beg: -1 pad_end: 0 } }
layer { name: "bn" type: "BN" bottom: "data" top: "bn" bn_param { frozen: true } }
layer { name: "shuffle" type: "ShuffleChannel" bottom: "data" top: "shuffle"
        shuffle_channel_param { group: 2 } }
layer { name: "dw" type: "ConvolutionDepthwise" bottom: "data" top: "dw"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu6" type: "ReLU6" bottom: "dw" top: "dw" }
layer { name: "axpy" type: "Axpy" bottom: "a" bottom: "data" bottom: "shuffle" top: "axpy" }
""",
        {"data": uniform(2, 4, 5, 6) * 8, "a": uniform(2, 4, 1, 1)},
        positive={"bn"},
    ),
    NetCase(
        "detection_parts",
        inputs(("data", (2, 8, 6, 8)), ("rois", (3, 5)))
        + """
layer { name: "reorg" type: "Reorg" bottom: "data" top: "reorg" reorg_param { stride: 2 } }
layer { name: "back" type: "Reorg" bottom: "reorg" top: "back"
        reorg_param { stride: 2 reverse: true } }
layer { name: "roi" type: "ROIPooling" bottom: "data" bottom: "rois" top: "roi"
        roi_pooling_param { pooled_h: 2 pooled_w: 3 spatial_scale: 0.5 } }
layer { name: "psroi" type: "PSROIPooling" bottom: "data" bottom: "rois" top: "psroi"
        psroi_pooling_param { spatial_scale: 0.5 output_dim: 2 group_size: 2 } }
""",
        {"data": uniform(2, 8, 6, 8),
         "rois": np.array([[0, 1, 2, 9, 8], [1, 0, 0, 15, 11], [1, 4.5, 3, 5, 3.5]],
                          np.float32)},
    ),
    NetCase(
        "face_parts",
        inputs(("data", (4, 6)), ("label", (4,)), ("fmap", (2, 3, 2, 2)), ("norm", (4, 1)))
        + """
layer { name: "fnorm" type: "Normalize" bottom: "fmap" top: "fnorm" top: "fnorm_len"
        normalize_param { normalize_type: "L2" } }
layer { name: "l2" type: "NormL2" bottom: "data" top: "l2" }
layer { name: "flip" type: "Flip" bottom: "fmap" top: "flip" }
layer { name: "cos" type: "InnerProduct" bottom: "l2" top: "cos"
        inner_product_param { num_output: 5 normalize: true bias_term: false } }
layer { name: "arc" type: "CosinAddm" bottom: "cos" bottom: "label" top: "arc"
        cosin_add_m_param { m: 0.3 } }
layer { name: "am" type: "LabelSpecificAdd" bottom: "cos" bottom: "label" top: "am"
        label_specific_add_param { bias: -0.3 } }
layer { name: "am2" type: "LabelSpecificAdd" bottom: "cos" bottom: "label" top: "am2"
        top: "margin" label_specific_add_param { bias_base: 0 bias_gamma: -0.5 bias_min: -0.4 } }
layer { name: "amscale" type: "ChannelScale" bottom: "am" bottom: "norm" top: "amscale" }
layer { name: "rescale" type: "LabelSpecificRescale" bottom: "cos" bottom: "label"
        top: "rescaled" top: "weight" label_specific_rescale_param { positive_weight: 0.7 } }
layer { name: "sphere" type: "MarginInnerProduct" bottom: "data" bottom: "label"
        top: "sphere" top: "lambda"
        margin_inner_product_param { num_output: 5 type: QUADRUPLE base: 100 gamma: 0.5
                                     power: 2 lambda_min: 3 iteration: 4 } }
""",
        {"data": uniform(4, 6), "label": labels(4, 5), "fmap": uniform(2, 3, 2, 2),
         "norm": uniform(4, 1)},
    ),
    NetCase(
        "segnet_unpooling",
        inputs(("data", (2, 3, 7, 6)))
        + """
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "mask"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Upsample" bottom: "pool" bottom: "mask" top: "up"
        upsample_param { scale: 2 pad_out_h: true } }
layer { name: "pool3" type: "Pooling" bottom: "data" top: "pool3" top: "mask3"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "up3" type: "Upsample" bottom: "pool3" bottom: "mask3" top: "up3"
        upsample_param { upsample_h: 7 upsample_w: 6 } }
layer { name: "global" type: "Pooling" bottom: "data" top: "global" top: "global_mask"
        pooling_param { pool: MAX global_pooling: true } }
layer { name: "sparse" type: "Pooling" bottom: "data" top: "sparse" top: "sparse_mask"
        pooling_param { pool: MAX kernel_size: 2 stride: 3 } }
""",
        {"data": uniform(2, 3, 7, 6)},
    ),
    NetCase(
        "normface_inner_distance",
        inputs(("data", (4, 2, 3)), ("centres", (5, 6)))
        + """
layer { name: "l2" type: "InnerDistance" bottom: "data" top: "l2"
        inner_distance_param { num_output: 5 normalize: true } }
layer { name: "l1" type: "InnerDistance" bottom: "data" top: "l1"
        inner_distance_param { num_output: 3 distance_type: "L1" } }
layer { name: "given" type: "InnerDistance" bottom: "data" bottom: "centres" top: "given"
        inner_distance_param { num_output: 5 } }
""",
        {"data": uniform(4, 2, 3), "centres": uniform(5, 6)},
    ),
    NetCase(
        "metric_losses",
        inputs(("a", (4, 3)), ("p", (4, 3)), ("n", (4, 3)), ("sets", (8, 3)),
               ("label", (8,)))
        + """
layer { name: "triplet" type: "TripletLoss" bottom: "a" bottom: "p" bottom: "n"
        top: "triplet" triplet_loss_param { margin: 0.5 losstype: 0 use_pair: 1 } }
layer { name: "sets_loss" type: "TripletLoss" bottom: "sets" bottom: "label" top: "sets_loss"
        triplet_loss_param { margin: 0.2 losstype: 1 num_negatives: 2 } }
layer { name: "npair" type: "NPairLoss" bottom: "a" bottom: "p" top: "npair" }
layer { name: "center" type: "CenterLoss" bottom: "sets" bottom: "label" top: "center"
        center_loss_param { num_output: 3 } }
""",
        {"a": uniform(4, 3), "p": uniform(4, 3), "n": uniform(4, 3), "sets": uniform(8, 3),
         "label": labels(8, 3)},
        keep_losses=True,
    ),
]


@pytest.mark.parametrize(
    "family", [LOSSES, LAYERS, FORKS], ids=["losses", "bvlc_layers", "fork_layers"]
)
def test_generated_modules_reproduce_caffe2torch(family: list[NetCase], tmp_path: Path) -> None:
    check_cases(family, tmp_path)


def test_blobs_named_like_copied_functions(tmp_path: Path) -> None:
    # a forward variable named like a copied function would hide the function
    case = NetCase(
        "blob_names",
        inputs(("data", (2, 3, 5, 5)), ("label", (2,)))
        + """
layer { name: "caffe_lrn" type: "LRN" bottom: "data" top: "caffe_lrn" }
layer { name: "pool" type: "Pooling" bottom: "caffe_lrn" top: "pool_index"
        pooling_param { pool: MAX kernel_size: 2 stride: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool_index" top: "label_index"
        inner_product_param { num_output: 3 } }
layer { name: "softmax_loss" type: "SoftmaxWithLoss" bottom: "label_index" bottom: "label"
        top: "softmax_loss" }
""",
        {"data": uniform(2, 3, 5, 5), "label": labels(2, 3)},
        keep_losses=True,
    )
    check_cases([case], tmp_path)


def test_detection_output_is_refused_by_name(tmp_path: Path) -> None:
    proto = tmp_path / "det.prototxt"
    proto.write_text(
        inputs(("loc", (1, 8)), ("conf", (1, 6)), ("prior", (1, 2, 8)))
        + """
layer { name: "detect" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior"
        top: "out" detection_output_param { num_classes: 3
        nms_param { nms_threshold: 0.45 } code_type: CENTER_SIZE } }
"""
    )
    with pytest.raises(ExportError, match=r"layer 'detect' \(DetectionOutput\).*value-dependent"):
        convert_net(proto, tmp_path / "det.py")


def test_cli_convert_keep_losses(tmp_path: Path, capsys) -> None:
    from caffe2torch.cli.main import main

    proto = tmp_path / "loss.prototxt"
    proto.write_text(LOSSES[0].prototxt)
    out = tmp_path / "loss_net.py"
    assert main(["convert", str(proto), "-o", str(out), "--keep-losses"]) == 0
    assert "outputs acc, loss, per_class, prob" in capsys.readouterr().out
    text = out.read_text()
    assert "def softmax_loss(" in text and "def caffe_accuracy(" in text
    assert main(["convert", str(proto), "-o", str(out)]) == 0
    assert "softmax_loss" not in out.read_text()  # a deploy view by default
