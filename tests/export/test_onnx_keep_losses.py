"""keep_losses: SoftmaxWithLoss, Accuracy, ContrastiveLoss, TripletLoss and EuclideanLoss
export and onnxruntime reproduces them at batch 1 and 3; a deploy file whose TEST-only
Accuracy reads an absent label exports without it, with a note."""

from __future__ import annotations

from pathlib import Path

import pytest

import caffe2torch as c2t
from caffe2torch.cli.main import main
from caffe2torch.export import export_onnx

LOSSES = """
name: "losses"
layer { name: "data" type: "Input" top: "a" top: "label" top: "p" top: "n" top: "sim"
        input_param { shape { dim: 2 dim: 6 } shape { dim: 2 } shape { dim: 2 dim: 6 }
                      shape { dim: 2 dim: 6 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "a" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "ip_p" type: "InnerProduct" bottom: "p" top: "ip_p"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "ip_n" type: "InnerProduct" bottom: "n" top: "ip_n"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "softmax_loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label"
        top: "softmax_loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
layer { name: "contrastive" type: "ContrastiveLoss" bottom: "ip" bottom: "ip_p" bottom: "sim"
        top: "contrastive" contrastive_loss_param { margin: 1.0 } }
layer { name: "triplet" type: "TripletLoss" bottom: "ip" bottom: "ip_p" bottom: "ip_n"
        top: "triplet" }
layer { name: "euclidean" type: "EuclideanLoss" bottom: "ip" bottom: "ip_p" top: "euclidean" }
"""

CASES = {
    "softmax_loss": ["a", "label"],
    "accuracy": ["a", "label"],
    "contrastive": ["a", "p", "sim"],
    "triplet": ["a", "p", "n"],
    "euclidean": ["a", "p"],
}


@pytest.mark.parametrize("loss", list(CASES), ids=list(CASES))
def test_keep_losses_exports_and_verifies(tmp_path: Path, loss: str) -> None:
    path = tmp_path / "losses.prototxt"
    path.write_text(LOSSES)
    net = c2t.load_net(path)
    report = export_onnx(net, tmp_path / "m.onnx", keep_losses=True, outputs=[loss],
                         verify=True)
    assert report.inputs == CASES[loss]
    assert report.verify is not None and report.verify.ok, report.verify.failures()
    assert {c.batch for c in report.verify.checks} == {1, 3}


DEPLOY_WITH_ACCURACY = """
name: "deploy"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc"
        include { phase: TEST } }
"""


def test_test_only_layer_without_its_input_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY_WITH_ACCURACY)
    report = export_onnx(path, tmp_path / "m.onnx", verify=True)
    assert report.outputs == ["prob"]
    assert any("left out acc (Accuracy)" in n and "'label'" in n for n in report.notes)
    assert report.verify is not None and report.verify.ok


def test_cli_notes_the_layer_left_out(tmp_path: Path, capsys) -> None:
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY_WITH_ACCURACY)
    assert main(["export", str(path), "-o", str(tmp_path / "m.onnx")]) == 0
    assert "note: left out acc (Accuracy): its input 'label' is made by no layer" in \
        capsys.readouterr().err
