"""SSD's photometric distortion (caffe2torch.layers.forks.ssd_distort): convertTo's
rounding and saturation by hand, the fork's always-on HSV round trip for saturation, the
channel shuffle, and the probabilities over many draws."""

from __future__ import annotations

import cv2
import numpy as np
from google.protobuf import text_format

from caffe2torch.data.order import RowDraws
from caffe2torch.layers.forks.ssd_distort import brightness, convert, distort, hue, reorder
from caffe2torch.proto import caffe_pb2

MOBILENET_SSD = """brightness_prob: 0.5 brightness_delta: 32.0 contrast_prob: 0.5
  contrast_lower: 0.5 contrast_upper: 1.5 hue_prob: 0.5 hue_delta: 18.0
  saturation_prob: 0.5 saturation_lower: 0.5 saturation_upper: 1.5 random_order_prob: 0.0"""


def param(text: str) -> caffe_pb2.DistortionParameter:
    return text_format.Parse(text, caffe_pb2.DistortionParameter())


class Half:
    """Draws that always give the middle of the range (uniform draws 0.5)."""

    def integers(self, high: int, /) -> int:
        return high // 2


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (8, 9, 3), dtype=np.uint8)


def test_convert_rounds_half_to_even_and_saturates() -> None:
    x = np.array([100, 250, 3, 0], np.uint8)
    np.testing.assert_array_equal(convert(x, 1, 10.5), [110, 255, 14, 10])
    np.testing.assert_array_equal(convert(x, 1.5, 0), [150, 255, 4, 0])
    np.testing.assert_array_equal(convert(x, 1, -20), [80, 230, 0, 0])


def test_saturation_round_trip_even_at_one() -> None:
    """At the middle of every range nothing changes the pixels but the saturation step,
    whose HSV round trip the fork always makes (and which is lossy in 8 bits)."""
    img = image()
    every_step = param("""brightness_prob: 1 brightness_delta: 32 contrast_prob: 1
        contrast_lower: 0.5 contrast_upper: 1.5 hue_prob: 1 hue_delta: 18
        saturation_prob: 1 saturation_lower: 0.5 saturation_upper: 1.5""")
    out = distort(img, every_step, Half())
    expect = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2HSV), cv2.COLOR_HSV2BGR)
    np.testing.assert_array_equal(out, expect)
    assert not np.array_equal(out, img)


def test_hue_saturates_instead_of_wrapping() -> None:
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 2] = 255  # hue 0
    p = param("hue_prob: 1 hue_delta: 18")
    shifted = [hue(red, p, RowDraws(s, 0)) for s in range(30)]
    # a negative delta leaves hue 0 where it is (saturated); a positive one turns it
    # towards yellow (green rises): never towards magenta (blue)
    assert all((o[..., 0] == 0).all() for o in shifted)
    assert any((o[..., 1] > 0).all() for o in shifted)
    assert any(np.array_equal(o, red) for o in shifted)


def test_brightness_probability_and_range() -> None:
    grey = np.full((2, 2, 3), 128, np.uint8)
    p = param("brightness_prob: 0.5 brightness_delta: 32")
    shifts = [int(brightness(grey, p, RowDraws(s, 0))[0, 0, 0]) - 128 for s in range(400)]
    changed = [d for d in shifts if d != 0]
    assert 150 < len(changed) < 250
    assert all(-32 <= d <= 32 for d in shifts) and min(changed) < -25 and max(changed) > 25


def test_reorder_gives_every_permutation() -> None:
    img = np.zeros((1, 1, 3), np.uint8)
    img[0, 0] = [1, 2, 3]
    p = param("random_order_prob: 1")
    seen = {tuple(reorder(img, p, RowDraws(s, 0))[0, 0]) for s in range(200)}
    assert seen == {(1, 2, 3), (1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1)}
    assert reorder(img, param("random_order_prob: 0"), RowDraws(0, 0)) is img


def test_mobilenet_ssd_settings_are_reproducible() -> None:
    img = image(1)
    p = param(MOBILENET_SSD)
    a = [distort(img, p, RowDraws(s, 0)) for s in range(20)]
    b = [distort(img, p, RowDraws(s, 0)) for s in range(20)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sum(not np.array_equal(x, img) for x in a) > 10
