"""A real SSD deploy net from the corpus (MobileNet-SSD, chuanqi305) builds with random
weights and runs on a drawn image, giving detections in the SSD fork's (1, 1, N, 7) format:
[image_id, label, score, xmin, ymin, xmax, ymax]."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import caffe2torch as c2t
from tests.conftest import CORPUS, need_shared
from tests.layers.test_detection_output import detection_output_ref
from tests.layers.test_prior_box import prior_box_ref

NET = CORPUS / "chuanqi305__MobileNet-SSD" / "voc" / "MobileNetSSD_deploy.prototxt"


def drawn_image() -> np.ndarray:
    """A 300 x 300 BGR scene: a few filled shapes on a gradient."""
    ramp = np.linspace(40, 200, 300, dtype=np.uint8)
    img = np.dstack(
        [
            np.tile(ramp, (300, 1)),
            np.tile(ramp[:, None], (1, 300)),
            np.full((300, 300), 90, np.uint8),
        ]
    )
    cv2.rectangle(img, (30, 40), (140, 200), (0, 0, 255), -1)
    cv2.circle(img, (220, 110), 55, (255, 200, 0), -1)
    cv2.ellipse(img, (200, 240), (70, 30), 15, 0, 360, (20, 220, 20), -1)
    return img


def preprocess(img: np.ndarray) -> torch.Tensor:
    """MobileNet-SSD's demo: (BGR - 127.5) * 0.007843, NCHW."""
    x = (img.astype(np.float32) - 127.5) * 0.007843
    return torch.from_numpy(x.transpose(2, 0, 1)[None].copy())


def tame_random_weights(net: torch.nn.Module, seed: int) -> None:
    """Random weights scaled to sqrt(2 / fan_in) and zero biases, so activations stay O(1)
    through the 35 ReLU layers and the decoded boxes are finite; the class heads are
    sharpened so that some scores pass the deploy file's confidence threshold."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, blobs in net.params.items():
            weight = blobs[0]
            if weight.dim() == 4:
                gain = 8.0 if name.endswith("mbox_conf") else 1.0
                fan_in = weight[0].numel()
                weight.copy_(
                    gain * torch.randn(weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
                )
            for bias in blobs[1:]:
                bias.zero_()


@pytest.mark.slow
def test_mobilenet_ssd_detects_in_the_fork_format():
    need_shared(NET)
    torch.manual_seed(0)
    net = c2t.load_net(NET, phase="TEST")
    tame_random_weights(net, seed=1)
    net.eval()
    watched = ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "conv11"]
    with torch.no_grad():
        out = net(data=preprocess(drawn_image()), blobs=watched)
    det = out["detection_out"].numpy()
    num_priors = 1917  # 19x19x3 + 10x10x6 + 5x5x6 + 3x3x6 + 2x2x6 + 1x1x6
    assert out["mbox_priorbox"].shape == (1, 2, num_priors * 4)
    assert out["mbox_conf_flatten"].shape == (1, num_priors * 21)

    # The first prior map (conv11, 19 x 19, min 60, no max, ratio 2) is the fork's.
    first = prior_box_ref(
        {
            "min_size": [60.0],
            "aspect_ratio": [2.0],
            "flip": True,
            "clip": False,
            "variance": [0.1, 0.1, 0.2, 0.2],
            "offset": 0.5,
        },
        (19, 19),
        (300, 300),
    )
    prior = out["mbox_priorbox"].numpy()
    np.testing.assert_array_equal(prior[:, 0, : first.shape[2]], first[:, 0])

    # Detections: the fork's format, and the fork's algorithm on the net's own blobs.
    assert det.ndim == 4 and det.shape[:2] == (1, 1) and det.shape[3] == 7
    assert det.shape[2] >= 1
    assert np.all(det[0, 0, :, 0] == 0)  # one image
    labels = det[0, 0, :, 1]
    assert np.all((labels >= 1) & (labels <= 20))  # background (0) is never reported
    assert np.all(det[0, 0, :, 2] > 0.25)  # confidence_threshold of the deploy file
    assert np.all(np.isfinite(det))
    expected = detection_output_ref(
        out["mbox_loc"].numpy(),
        out["mbox_conf_flatten"].numpy(),
        prior,
        {
            "num_classes": 21,
            "background_label_id": 0,
            "code_type": 2,
            "nms_threshold": 0.45,
            "top_k": 100,
            "keep_top_k": 100,
            "confidence_threshold": 0.25,
        },
    )
    np.testing.assert_array_equal(det, expected)
