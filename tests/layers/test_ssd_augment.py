"""SSD's augmenting AnnotatedData path (distort_param, expand_param, batch_sampler crops,
emit_constraint, random interp_mode, mirror) through a tiny LMDB of encoded AnnotatedDatum
records: boxes stay on their objects and on their images, the same seed gives the same
batches, and a small SSD-style net with MultiBoxLoss trains on the batches."""

from __future__ import annotations

from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.data.order import RowDraws
from caffe2torch.errors import DataError
from caffe2torch.layers.forks.ssd_augment import Augmenter, crop_pixels, expand_canvas
from caffe2torch.layers.forks.ssd_boxes import transform_annotation
from caffe2torch.layers.forks.ssd_data import AnnotatedDataReader
from caffe2torch.proto import caffe_pb2
from tests.layers.helpers_core import layer_param

SIZE = 32  # the resize_param height and width
SAMPLERS = """
    batch_sampler { max_sample: 1 max_trials: 1 }
    batch_sampler { sampler { min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5
      max_aspect_ratio: 2.0 } sample_constraint { min_jaccard_overlap: 0.1 }
      max_sample: 1 max_trials: 50 }
    batch_sampler { sampler { min_scale: 0.3 max_scale: 1.0 min_aspect_ratio: 0.5
      max_aspect_ratio: 2.0 } sample_constraint { max_jaccard_overlap: 1.0 }
      max_sample: 1 max_trials: 50 }"""


def object_image(k: int) -> tuple[np.ndarray, list[tuple[int, tuple[float, ...]]]]:
    """Record k: a dark image of its own size with one white rectangle (the box of label
    k + 1) and a dim tint in channel k % 3 that tells the images apart."""
    h, w = 60 + 10 * k, 80 - 10 * k
    img = np.zeros((h, w, 3), np.uint8)
    img[..., k % 3] = 60
    x0, y0, x1, y1 = 0.2 + 0.1 * k, 0.3, 0.6 + 0.1 * k, 0.7
    img[round(y0 * h):round(y1 * h), round(x0 * w):round(x1 * w)] = 255
    return img, [(k + 1, (x0, y0, x1, y1))]


def make_lmdb(path: Path, count: int = 3, raw: bool = False) -> None:
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for k in range(count):
            img, boxes = object_image(k)
            anno = caffe_pb2.AnnotatedDatum(type=caffe_pb2.AnnotatedDatum.BBOX)
            if raw:
                anno.datum.channels, anno.datum.height, anno.datum.width = 3, *img.shape[:2]
                anno.datum.data = img.transpose(2, 0, 1).tobytes()
            else:
                anno.datum.encoded = True
                anno.datum.data = cv2.imencode(".png", img)[1].tobytes()
            for label, (x0, y0, x1, y1) in boxes:
                a = anno.annotation_group.add(group_label=label).annotation.add(instance_id=0)
                a.bbox.xmin, a.bbox.ymin, a.bbox.xmax, a.bbox.ymax = x0, y0, x1, y1
            txn.put(f"{k:08d}".encode(), anno.SerializeToString())
    env.close()


def layer_text(source: str = "lmdb", batch: int = 3, extra: str = "",
               samplers: str = SAMPLERS) -> str:
    return f"""name: "data" type: "AnnotatedData" top: "data" top: "label"
        include {{ phase: TRAIN }}
        transform_param {{ mirror: true resize_param {{ prob: 1 resize_mode: WARP
          height: {SIZE} width: {SIZE} interp_mode: LINEAR interp_mode: AREA
          interp_mode: NEAREST interp_mode: CUBIC interp_mode: LANCZOS4 }}
          emit_constraint {{ emit_type: CENTER }} {extra} }}
        data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }}
        annotated_data_param {{ {samplers} }}"""


def reader(tmp_path: Path, seed: int, **kw) -> AnnotatedDataReader:
    return AnnotatedDataReader(layer_param(layer_text(**kw)), "TRAIN", tmp_path, seed=seed)


def white_extent(img: np.ndarray) -> tuple[float, float, float, float] | None:
    """The white rectangle's extent in a C x H x W image, normalized."""
    ys, xs = np.nonzero(img.min(axis=0) > 160)
    if len(ys) == 0:
        return None
    h, w = img.shape[1:]
    return xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h


@pytest.mark.parametrize("extra", [
    "", "mean_value: 0 expand_param { prob: 0.5 max_expand_ratio: 3 }",
    "distort_param { hue_prob: 0.5 hue_delta: 18 saturation_prob: 0.5 saturation_lower: 0.5 "
    "saturation_upper: 1.5 } expand_param { prob: 0.5 max_expand_ratio: 3 }",
], ids=["crop", "expand+crop", "distort+expand+crop"])
def test_boxes_stay_on_their_objects_and_images(tmp_path: Path, extra: str) -> None:
    make_lmdb(tmp_path / "lmdb")
    r = reader(tmp_path, seed=0, extra=extra)
    seen_sizes = set()
    for _ in range(12):
        batch = r.next_batch()
        images, label = batch["data"].numpy(), batch["label"].numpy().reshape(-1, 8)
        assert images.shape == (3, 3, SIZE, SIZE)
        for item in range(3):
            img = images[item]
            rows = label[label[:, 0] == item]
            dark = img.reshape(3, -1)[:, img.min(axis=0).ravel() < 160]
            if dark.shape[1]:  # the box belongs to this image's record
                tint = int(np.argmax(dark.mean(axis=1)))
                assert all((int(row[1]) - 1) % 3 == tint for row in rows)
            extent = white_extent(img)
            if len(rows) == 0:
                continue
            assert extent is not None
            # the white rectangle is where the box says, to a pixel or two of resizing
            np.testing.assert_allclose(rows[0, 3:7], extent, atol=2.5 / SIZE)
            seen_sizes.add(round(float(rows[0, 5] - rows[0, 3]), 2))
    assert len(seen_sizes) > 5  # the crops vary


def test_same_seed_same_batches(tmp_path: Path) -> None:
    make_lmdb(tmp_path / "lmdb")
    def batches(seed: int) -> list[dict[str, torch.Tensor]]:
        r = reader(tmp_path, seed)
        try:
            return [r.next_batch() for _ in range(3)]
        finally:
            r.close()

    differs = False
    for x, y, z in zip(batches(5), batches(5), batches(6)):
        for top in ("data", "label"):
            torch.testing.assert_close(x[top], y[top], rtol=0, atol=0)
        differs |= x["label"].shape != z["label"].shape or not torch.equal(
            x["label"], z["label"])
    assert differs


def test_skip_batches_continues_where_reading_would(tmp_path: Path) -> None:
    make_lmdb(tmp_path / "lmdb")
    r = reader(tmp_path, 4, batch=2)
    third = [r.next_batch() for _ in range(3)][-1]
    r.close()
    r = reader(tmp_path, 4, batch=2)
    r.skip_batches(2)
    again = r.next_batch()
    r.close()
    for top in ("data", "label"):
        torch.testing.assert_close(third[top], again[top], rtol=0, atol=0)


def test_no_window_found_keeps_the_image(tmp_path: Path) -> None:
    """A constraint no window can meet: no crop, the whole image resized."""
    make_lmdb(tmp_path / "lmdb", count=1)
    samplers = ("batch_sampler { sampler { min_scale: 0.3 max_scale: 0.4 } "
                "sample_constraint { min_object_coverage: 1.0 min_jaccard_overlap: 0.99 } "
                "max_trials: 5 }")
    label = reader(tmp_path, 1, batch=1, samplers=samplers).next_batch()["label"]
    box = label.numpy().reshape(8)[3:7]
    assert np.allclose(box, [0.2, 0.3, 0.6, 0.7], atol=1e-6) or np.allclose(
        box, [0.4, 0.3, 0.8, 0.7], atol=1e-6)  # mirrored or not


def test_the_stages_in_the_forks_order() -> None:
    """The augmenter's image equals crop (at the window the same draws pick), JPEG
    round trip, then a resize with the interp_mode drawn after the mirror coin."""
    img, _ = object_image(0)
    boxes = np.array([[0, 1, 0, 0.2, 0.3, 0.6, 0.7, 0]], np.float32)
    aug = Augmenter(layer_param(layer_text()), "layer 'data'")
    coins = set()
    for seed in range(8):
        out, out_boxes, mirror = aug(img, boxes, RowDraws(seed, 0), encoded=True)
        coins.add(mirror)
        from caffe2torch.layers.forks.ssd_boxes import generate_samples

        draws = RowDraws(seed, 0)
        windows = generate_samples(boxes, aug.samplers, draws)
        window = windows[int(draws.integers(len(windows)))]
        crop = cv2.imdecode(cv2.imencode(".jpg", crop_pixels(img, window))[1], -1)
        assert bool(draws.integers(2)) == mirror
        interp = [cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_NEAREST, cv2.INTER_CUBIC,
                  cv2.INTER_LANCZOS4][int(draws.integers(5))]
        np.testing.assert_array_equal(out, cv2.resize(crop, (SIZE, SIZE),
                                                      interpolation=interp))
        assert out_boxes.shape[1] == 8
    assert coins == {False, True}


class Half:
    """Draws that always give the middle of the range."""

    def integers(self, high: int, /) -> int:
        return high // 2


def test_expand_canvas_by_hand() -> None:
    img = np.full((10, 20, 3), 200, np.uint8)
    canvas, window = expand_canvas(img, np.float32(2.0), np.array([1, 2, 3], np.uint8),
                                   Half())
    # a 20 x 40 canvas, the image at (5, 10): floor(0.5 * 10), floor(0.5 * 20)
    assert canvas.shape == (20, 40, 3)
    assert (canvas[5:15, 10:30] == 200).all()
    assert (canvas[:5] == [1, 2, 3]).all() and (canvas[:, :10] == [1, 2, 3]).all()
    np.testing.assert_allclose(window, (-0.5, -0.5, 1.5, 1.5))
    whole = np.array([[0, 1, 0, 0, 0, 1, 1, 0]], np.float32)
    moved = transform_annotation(whole, window)
    np.testing.assert_allclose(moved[0, 3:7], [0.25, 0.25, 0.75, 0.75])


def test_expand_probability_and_mean_fill(tmp_path: Path) -> None:
    img, _ = object_image(0)
    boxes = np.array([[0, 1, 0, 0.2, 0.3, 0.6, 0.7, 0]], np.float32)
    layer = layer_param(layer_text(samplers="", extra="mean_value: 127.5 expand_param { "
                                   "prob: 0.5 max_expand_ratio: 4 }"))
    aug = Augmenter(layer, "layer 'data'")
    expanded = 0
    for seed in range(40):
        out, out_boxes = aug.expand_stage(img, boxes, RowDraws(seed, 0), encoded=False)
        if out.shape != img.shape:
            expanded += 1
            h, w = out.shape[:2]
            assert img.shape[0] <= h < 4 * img.shape[0] and img.shape[1] <= w < 4 * img.shape[1]
            assert (out[0, 0] == 128).all() or (out[-1, -1] == 128).all()  # 127.5 rounded
            # the box is where the white rectangle went
            ys, xs = np.nonzero(out.min(axis=2) == 255)
            np.testing.assert_allclose(out_boxes[0, 3:7], [xs.min() / w, ys.min() / h,
                                       (xs.max() + 1) / w, (ys.max() + 1) / h], atol=1e-5)
    assert 8 < expanded < 32  # prob 0.5 of 40
    never = Augmenter(layer_param(layer_text(samplers="", extra="expand_param { prob: 0.5 "
                                             "max_expand_ratio: 1.005 }")), "layer 'data'")
    assert never.expand_stage(img, boxes, RowDraws(0, 0), False)[0] is img


def test_expand_with_mean_file_is_refused() -> None:
    with pytest.raises(DataError, match="mean_file"):
        Augmenter(layer_param(layer_text(extra='mean_file: "m.binaryproto" expand_param '
                                         '{ prob: 0.5 max_expand_ratio: 4 }')), "l")


def test_crop_pixels_truncate_like_the_fork() -> None:
    img = np.arange(10 * 20, dtype=np.uint8).reshape(10, 20)
    out = crop_pixels(img, (np.float32(0.1), np.float32(0.25), np.float32(0.55),
                            np.float32(0.8)))
    # x: 2.0 .. 11.0 -> offset 2, width 9; y: 2.5 .. 8.0 -> offset 2, height int(5.5) = 5
    np.testing.assert_array_equal(out, img[2:7, 2:11])


def test_raw_records_are_refused(tmp_path: Path) -> None:
    make_lmdb(tmp_path / "lmdb", count=1, raw=True)
    with pytest.raises(DataError, match="raw pixels"):
        reader(tmp_path, 0, batch=1).next_batch()


NET = """
name: "tiny-ssd"
layer {{ {data} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 8 kernel_size: 3 stride: 2 pad: 1
    weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
  convolution_param {{ num_output: 8 kernel_size: 3 stride: 2 pad: 1
    weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }}
layer {{ name: "loc" type: "Convolution" bottom: "conv2" top: "loc"
  convolution_param {{ num_output: 8 kernel_size: 3 pad: 1 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loc_perm" type: "Permute" bottom: "loc" top: "loc_perm"
  permute_param {{ order: 0 order: 2 order: 3 order: 1 }} }}
layer {{ name: "loc_flat" type: "Flatten" bottom: "loc_perm" top: "loc_flat" }}
layer {{ name: "conf" type: "Convolution" bottom: "conv2" top: "conf"
  convolution_param {{ num_output: 8 kernel_size: 3 pad: 1
    weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "conf_perm" type: "Permute" bottom: "conf" top: "conf_perm"
  permute_param {{ order: 0 order: 2 order: 3 order: 1 }} }}
layer {{ name: "conf_flat" type: "Flatten" bottom: "conf_perm" top: "conf_flat" }}
layer {{ name: "prior" type: "PriorBox" bottom: "conv2" bottom: "data" top: "prior"
  prior_box_param {{ min_size: 10 max_size: 20 clip: false variance: 0.1 variance: 0.1
    variance: 0.2 variance: 0.2 }} }}
layer {{ name: "loss" type: "MultiBoxLoss" bottom: "loc_flat" bottom: "conf_flat"
  bottom: "prior" bottom: "label" top: "loss"
  multibox_loss_param {{ loc_loss_type: SMOOTH_L1 conf_loss_type: SOFTMAX loc_weight: 1.0
    num_classes: 4 share_location: true match_type: PER_PREDICTION overlap_threshold: 0.5
    use_prior_for_matching: true background_label_id: 0 use_difficult_gt: true
    neg_pos_ratio: 3.0 neg_overlap: 0.5 code_type: CENTER_SIZE mining_type: MAX_NEGATIVE }}
  loss_param {{ normalization: VALID }} }}
"""


def test_small_ssd_net_trains_on_augmented_batches(tmp_path: Path) -> None:
    make_lmdb(tmp_path / "lmdb")
    path = tmp_path / "train.prototxt"
    path.write_text(NET.format(data=layer_text(source=str(tmp_path / "lmdb"))))
    torch.manual_seed(0)
    net = c2t.load_net(path, phase="TRAIN", input_shapes={"data": (3, 3, SIZE, SIZE)})
    r = AnnotatedDataReader.from_net_param(c2t.read_net(path), "TRAIN", tmp_path, seed=3)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-2,
                          momentum=0.9)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = net.loss(net(**r.next_batch()))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and losses[0] > 0, losses


def test_caffe2torch_train_reads_the_lmdb_reproducibly(tmp_path: Path, monkeypatch) -> None:
    """``caffe2torch train`` feeds an SSD TRAIN net from its LMDB through the augmenting
    path; the solver's random_seed makes two runs give the same weights."""
    from caffe2torch.cli.main import main

    make_lmdb(tmp_path / "lmdb")
    (tmp_path / "train.prototxt").write_text(NET.format(data=layer_text(source="lmdb")))
    solver = ('net: "train.prototxt" base_lr: 0.01 lr_policy: "fixed" momentum: 0.9 '
              'max_iter: 3 display: 1 random_seed: 7 snapshot_prefix: "{}" '
              'solver_mode: CPU')
    weights = []
    monkeypatch.chdir(tmp_path)
    for run in ("a", "b"):
        (tmp_path / f"{run}.prototxt").write_text(solver.format(run))
        assert main(["train", "--solver", f"{run}.prototxt"]) == 0
        net = c2t.load_net(tmp_path / "train.prototxt", phase="TRAIN",
                           weights=tmp_path / f"{run}_iter_3.caffemodel",
                           input_shapes={"data": (3, 3, SIZE, SIZE)})
        weights.append({k: [b.detach().clone() for b in v] for k, v in net.params.items()})
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        for x, y in zip(weights[0][k], weights[1][k]):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
