"""RefineDet's DetectionOutput (sfzhang15/RefineDet): bottoms 3 and 4 are the anchor
refinement module's arm_conf and arm_loc. The fork's formula (detection_output_layer.cpp,
bbox_util.cpp): a prior whose objectness arm_conf[p * 2 + 1] is below objectness_score
scores 1 for label 0 and 0 for the others (OSGetConfidenceScores); the priors are decoded
by arm_loc, then the loc predictions against those refined priors with the priors'
variances (CasRegDecodeBBoxesAll)."""

from pathlib import Path

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import CaffeError
from tests.layers.test_detection_output import (
    CENTER_SIZE,
    decode_ref,
    detection_output_ref,
    make_inputs,
)

F = np.float32


def refinedet_ref(loc, conf, prior, arm_conf, arm_loc, p, objectness):
    """The fork's Forward_cpu, one image at a time through the SSD reference."""
    num, num_priors, classes = loc.shape[0], prior.shape[2] // 4, p["num_classes"]
    pb, pv = prior[0, 0].reshape(-1, 4), prior[0, 1].reshape(-1, 4)
    rows = []
    for i in range(num):
        scores = conf[i].reshape(num_priors, classes).copy()
        for k in range(num_priors):
            if arm_conf[i].reshape(num_priors, 2)[k, 1] < F(objectness):
                scores[k] = [1.0] + [0.0] * (classes - 1)
        refined = np.array([decode_ref(pb[k], pv[k], arm_loc[i].reshape(-1, 4)[k],
                                       p["code_type"], False) for k in range(num_priors)], F)
        prior_i = np.stack([refined.reshape(-1), pv.reshape(-1)])[None]
        out = detection_output_ref(loc[i:i + 1], scores.reshape(1, -1), prior_i, p)[0, 0]
        out[:, 0] = i
        rows.append(out)
    return np.concatenate(rows)[None, None]


ORDER = ("odm_loc", "odm_conf", "prior", "arm_conf", "arm_loc")  # RefineDet's deploy nets


def net_text(p, shapes, objectness=None):
    """A net of Input blobs of ``shapes`` (bottoms in RefineDet's order) and the layer."""
    names = [b for b in ORDER if b in shapes]
    inputs = "".join(f'input: "{b}" input_shape {{ ' + " ".join(f"dim: {d}" for d in shapes[b])
                     + " }\n" for b in names)
    extra = "" if objectness is None else f" objectness_score: {objectness}"
    bottoms = " ".join(f'bottom: "{b}"' for b in names)
    return (f'name: "refinedet"\n{inputs}'
            f'layer {{ name: "detection_out" type: "DetectionOutput" {bottoms} '
            f'top: "detection_out" detection_output_param {{ num_classes: {p["num_classes"]} '
            f'share_location: {p.get("share", "true")} background_label_id: 0 '
            f'nms_param {{ nms_threshold: 0.45 top_k: 40 }} code_type: CENTER_SIZE '
            f'keep_top_k: 30 confidence_threshold: 0.05{extra} }} }}\n')


def load(tmp_path: Path, text: str) -> torch.nn.Module:
    path = tmp_path / "refinedet.prototxt"
    path.write_text(text)
    return c2t.load_net(str(path))


def arm_inputs(num, num_priors, seed):
    rng = np.random.default_rng(seed)
    objectness = rng.uniform(0.0, 1.0, (num, num_priors)).astype(F)
    arm_conf = np.stack([1 - objectness, objectness], -1).reshape(num, -1).astype(F)
    arm_loc = rng.normal(scale=0.5, size=(num, num_priors * 4)).astype(F)
    return arm_conf, arm_loc


@pytest.mark.parametrize("objectness", [0.01, 0.5])
def test_matches_the_fork(tmp_path, objectness):
    p = {"num_classes": 4, "code_type": CENTER_SIZE, "nms_threshold": 0.45, "top_k": 40,
         "keep_top_k": 30, "confidence_threshold": 0.05, "priors": 50}
    num, priors = 2, p["priors"]
    loc, conf, prior = make_inputs(num, priors, p["num_classes"], 1, seed=7)
    arm_conf, arm_loc = arm_inputs(num, priors, seed=8)
    shapes = {"odm_loc": loc.shape, "odm_conf": conf.shape, "prior": prior.shape,
              "arm_conf": arm_conf.shape, "arm_loc": arm_loc.shape}
    net = load(tmp_path, net_text(p, shapes, objectness))
    feeds = {"odm_loc": loc, "odm_conf": conf, "prior": prior, "arm_conf": arm_conf,
             "arm_loc": arm_loc}
    out = net(**{k: torch.from_numpy(v) for k, v in feeds.items()})["detection_out"]
    expected = refinedet_ref(loc, conf, prior, arm_conf, arm_loc, p, objectness)
    assert out.shape == expected.shape and out.shape[2] > 2
    np.testing.assert_array_equal(out.numpy(), expected)


def test_hand_computed(tmp_path):
    """Two priors of one class. Prior 0 is refined right by arm_loc (cx + 0.1 * 1 * 0.2),
    then its odm loc moves it down (cy + 0.1 * 1 * 0.2); prior 1 would score 0.9 but its
    objectness 0.3 is below 0.5, so its class-1 score becomes 0."""
    prior = np.array([[[0.1, 0.1, 0.3, 0.3, 0.6, 0.6, 0.9, 0.9],
                       [0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.2, 0.2]]], F)
    arm_loc = np.array([[1, 0, 0, 0, 0, 0, 0, 0]], F)
    loc = np.array([[0, 1, 0, 0, 0, 0, 0, 0]], F)
    conf = np.array([[0.2, 0.8, 0.1, 0.9]], F)
    arm_conf = np.array([[0.4, 0.6, 0.7, 0.3]], F)
    p = {"num_classes": 2, "priors": 2}
    net = load(tmp_path, net_text(p, {"odm_loc": loc.shape, "odm_conf": conf.shape,
                                      "prior": prior.shape, "arm_conf": arm_conf.shape,
                                      "arm_loc": arm_loc.shape}, 0.5))
    out = net(odm_loc=torch.from_numpy(loc), odm_conf=torch.from_numpy(conf),
              prior=torch.from_numpy(prior), arm_conf=torch.from_numpy(arm_conf),
              arm_loc=torch.from_numpy(arm_loc))["detection_out"].numpy()[0, 0]
    np.testing.assert_allclose(out, [[0, 1, 0.8, 0.12, 0.12, 0.32, 0.32]], atol=1e-6)


def test_four_bottoms_mean_arm_conf_only_with_objectness_score(tmp_path):
    """weiliu89's layer takes a fourth bottom and ignores it; RefineDet's four-bottom form
    (arm_conf, no arm_loc) is told by its objectness_score."""
    p = {"num_classes": 3, "code_type": CENTER_SIZE, "nms_threshold": 0.45, "top_k": 40,
         "keep_top_k": 30, "confidence_threshold": 0.05, "priors": 30}
    loc, conf, prior = make_inputs(1, 30, 3, 1, seed=3)
    arm_conf, _ = arm_inputs(1, 30, seed=4)
    shapes = {"odm_loc": loc.shape, "odm_conf": conf.shape, "prior": prior.shape,
              "arm_conf": arm_conf.shape}
    feeds = {"odm_loc": loc, "odm_conf": conf, "prior": prior, "arm_conf": arm_conf}
    tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
    plain = load(tmp_path, net_text(p, shapes))(**tensors)["detection_out"].numpy()
    np.testing.assert_array_equal(plain, detection_output_ref(loc, conf, prior, p))
    filtered = load(tmp_path, net_text(p, shapes, 0.6))(**tensors)["detection_out"].numpy()
    kept = conf.reshape(30, 3).copy()
    kept[arm_conf.reshape(30, 2)[:, 1] < F(0.6)] = [1.0, 0.0, 0.0]
    np.testing.assert_array_equal(filtered,
                                  detection_output_ref(loc, kept.reshape(1, -1), prior, p))
    assert filtered.shape[2] < plain.shape[2]


def test_bad_arm_bottoms_are_clear_errors(tmp_path):
    p = {"num_classes": 2, "priors": 4}
    good = {"odm_loc": (1, 16), "odm_conf": (1, 8), "prior": (1, 2, 16),
            "arm_conf": (1, 8), "arm_loc": (1, 16)}
    with pytest.raises(CaffeError, match=r"arm_loc .* 4 values per prior"):
        load(tmp_path, net_text(p, good | {"arm_loc": (1, 12)}))
    with pytest.raises(CaffeError, match="share_location: true"):
        load(tmp_path, net_text(p | {"share": "false"}, good | {"odm_loc": (1, 32)}))


def test_export_refuses_the_anchor_refinement(tmp_path):
    pytest.importorskip("onnx")
    from caffe2torch.export.onnx import export_onnx

    p = {"num_classes": 2, "priors": 4}
    path = tmp_path / "refinedet.prototxt"
    path.write_text(net_text(p, {"odm_loc": (1, 16), "odm_conf": (1, 8),
                                 "prior": (1, 2, 16), "arm_conf": (1, 8),
                                 "arm_loc": (1, 16)}))
    with pytest.raises(CaffeError, match="anchor refinement"):
        export_onnx(c2t.load_net(str(path)), str(tmp_path / "r.onnx"))
