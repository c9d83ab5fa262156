"""PriorBox (SSD): default boxes of a feature map, (1, 2, H * W * num_priors * 4), with the
fork's int truncation of sizes and its float/double arithmetic."""

import math

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, top_shapes

F = np.float32


def prior_box_ref(p, layer_hw, img_hw):
    """PriorBoxLayer::LayerSetUp + Forward_cpu, scalar by scalar."""
    ratios = [F(1.0)]
    for ar in p.get("aspect_ratio", []):
        ar = F(ar)
        if any(abs(float(ar) - float(r)) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if p.get("flip", True):
            ratios.append(F(1.0 / float(ar)))
    mins, maxs = p["min_size"], p.get("max_size", [])
    variance = [F(v) for v in p.get("variance", [0.1])]
    lh, lw = layer_hw
    img_h, img_w = p.get("img", img_hw)
    if "step" in p:
        step_h = step_w = F(p["step"])
    else:
        step_w, step_h = F(F(img_w) / F(lw)), F(F(img_h) / F(lh))
    offset = F(p.get("offset", 0.5))
    top = []
    for h in range(lh):
        for w in range(lw):
            cx = F(F(F(w) + offset) * step_w)
            cy = F(F(F(h) + offset) * step_h)
            boxes = []
            for s, m in enumerate(mins):
                m = int(m)
                boxes.append((F(m), F(m)))
                if maxs:
                    side = F(math.sqrt(m * int(maxs[s])))
                    boxes.append((side, side))
                for ar in ratios:
                    if abs(float(ar) - 1.0) < 1e-6:
                        continue
                    boxes.append((F(m * math.sqrt(float(ar))), F(m / math.sqrt(float(ar)))))
            for bw, bh in boxes:
                top += [
                    F((float(cx) - float(bw) / 2.0) / img_w),
                    F((float(cy) - float(bh) / 2.0) / img_h),
                    F((float(cx) + float(bw) / 2.0) / img_w),
                    F((float(cy) + float(bh) / 2.0) / img_h),
                ]
    top = np.array(top, dtype=F)
    if p.get("clip", False):
        top = np.minimum(np.maximum(top, F(0)), F(1))
    var = np.array([variance[i % len(variance)] for i in range(top.size)], dtype=F)
    return np.stack([top, var])[None]


def prior_text(p):
    fields = [f"min_size: {m}" for m in p["min_size"]]
    fields += [f"max_size: {m}" for m in p.get("max_size", [])]
    fields += [f"aspect_ratio: {a}" for a in p.get("aspect_ratio", [])]
    fields += [f"variance: {v}" for v in p.get("variance", [])]
    if "flip" in p:
        fields.append(f"flip: {str(p['flip']).lower()}")
    if "clip" in p:
        fields.append(f"clip: {str(p['clip']).lower()}")
    if "step" in p:
        fields.append(f"step: {p['step']}")
    if "offset" in p:
        fields.append(f"offset: {p['offset']}")
    if "img" in p:
        fields.append(f"img_h: {p['img'][0]} img_w: {p['img'][1]}")
    return " ".join(fields)


CASES = {
    # SSD300 conv4_3_norm_mbox_priorbox (xzgz__caffe-ssd deploy)
    "ssd300_conv4_3": (
        {
            "min_size": [30.0],
            "max_size": [60.0],
            "aspect_ratio": [2],
            "flip": True,
            "clip": False,
            "variance": [0.1, 0.1, 0.2, 0.2],
            "step": 8,
            "offset": 0.5,
        },
        (38, 38),
        (300, 300),
    ),
    # MobileNet-SSD conv13_mbox_priorbox (chuanqi305__MobileNet-SSD deploy)
    "mobilenet_ssd_conv13": (
        {
            "min_size": [105.0],
            "max_size": [150.0],
            "aspect_ratio": [2.0, 3.0],
            "flip": True,
            "clip": False,
            "variance": [0.1, 0.1, 0.2, 0.2],
            "offset": 0.5,
        },
        (10, 10),
        (300, 300),
    ),
    "fork_test_multi_size_clip": (
        {"min_size": [4, 14], "max_size": [9, 19], "aspect_ratio": [1.0, 2.0, 2.0], "clip": True},
        (10, 10),
        (100, 100),
    ),
    "truncated_fractional_sizes_img_hw": (
        {
            "min_size": [21.9],
            "max_size": [45.5],
            "aspect_ratio": [3.0],
            "flip": False,
            "variance": [0.2],
            "img": (320, 240),
            "offset": 0.25,
        },
        (5, 7),
        (0, 0),
    ),
    "non_square_map": (
        {"min_size": [16], "aspect_ratio": [0.5]},
        (3, 8),
        (90, 200),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_fork(case):
    p, layer_hw, img_hw = CASES[case]
    bottoms = [(1, 8, *layer_hw)] + ([] if "img" in p else [(1, 3, *img_hw)])
    text = 'name: "pb" type: "PriorBox" bottom: "f" '
    text += "" if "img" in p else 'bottom: "data" '
    text += f'top: "pb" prior_box_param {{ {prior_text(p)} }}'
    layer = build(text, bottoms)
    expected = prior_box_ref(p, layer_hw, img_hw)
    assert top_shapes(layer, bottoms) == [expected.shape]
    out = layer(*[torch.zeros(s) for s in bottoms])
    np.testing.assert_array_equal(out.numpy(), expected)


def test_fork_test_values():
    """The first box of the fork's TestCPU: min 4, max 9, 10x10 map on a 100x100 image."""
    layer = build(
        'name: "pb" type: "PriorBox" bottom: "f" bottom: "d" top: "pb" '
        "prior_box_param { min_size: 4 max_size: 9 }",
        [(10, 10, 10, 10), (10, 3, 100, 100)],
    )
    out = layer(torch.zeros(10, 10, 10, 10), torch.zeros(10, 3, 100, 100))
    assert tuple(out.shape) == (1, 2, 800)
    torch.testing.assert_close(
        out[0, 0, :8], torch.tensor([0.03, 0.03, 0.07, 0.07, 0.02, 0.02, 0.08, 0.08])
    )
    assert torch.all(out[0, 1] == torch.tensor(0.1, dtype=torch.float32))


@pytest.mark.parametrize(
    "body",
    [
        "",
        "min_size: 4 max_size: 3",
        "min_size: 4 variance: 0.1 variance: 0.2",
        "min_size: 4 step: 8 step_h: 4 step_w: 4",
    ],
    ids=["no_min_size", "max_below_min", "two_variances", "step_and_step_hw"],
)
def test_bad_params_are_build_errors(body):
    with pytest.raises(BuildError):
        build(
            f'name: "pb" type: "PriorBox" bottom: "f" bottom: "d" top: "pb" '
            f"prior_box_param {{ {body} }}",
            [(1, 2, 3, 3), (1, 3, 30, 30)],
        )
