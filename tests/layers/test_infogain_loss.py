"""InfogainLoss: internal softmax, H from a bottom or a .binaryproto, prob top, ignore_label."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.registry import find_layer_spec
from caffe2torch.proto import caffe_pb2
from tests.layers.helpers_core import build, golden_params, run_golden

TEXT = 'type: "InfogainLoss" bottom: "x" bottom: "y" bottom: "H" top: "loss" '


def reference(logits, labels, h, ignore, mode):
    """Loss and gradient with explicit loops, axis 1, float64."""
    x = np.moveaxis(logits.astype(np.float64), 1, -1)
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    flat_p = p.reshape(-1, p.shape[-1])
    grad = np.zeros_like(flat_p)
    loss, count = 0.0, 0
    for k, lab in enumerate(labels.reshape(-1).astype(int)):
        if ignore is not None and lab == ignore:
            continue
        loss -= (h[lab] * np.log(np.maximum(flat_p[k], 1e-20))).sum()
        grad[k] = flat_p[k] * h[lab].sum() - h[lab]
        count += 1
    norm = max(1, {"VALID": count, "BATCH_SIZE": logits.shape[0], "FULL": labels.size}[mode])
    return loss / norm, np.moveaxis(grad.reshape(p.shape), -1, 1) / norm


def data(shape=(3, 4, 2), seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, shape[1], size=(shape[0], *shape[2:])).astype(np.float32)
    h = rng.uniform(size=(shape[1], shape[1])).astype(np.float32)
    return logits, labels, h


@golden_params("InfogainLoss")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize(
    ("extra", "ignore", "mode"),
    [
        ("", None, "VALID"),
        ("loss_param { ignore_label: 1 }", 1, "VALID"),
        ("loss_param { normalization: BATCH_SIZE }", None, "BATCH_SIZE"),
        ("loss_param { normalization: FULL ignore_label: 0 }", 0, "FULL"),
    ],
    ids=["valid", "valid_ignore", "batch_size", "full_ignore"],
)
def test_matches_reference(extra, ignore, mode):
    logits, labels, h = data()
    module = build(TEXT + extra, [logits.shape, labels.shape, h.shape])
    x = torch.tensor(logits, requires_grad=True)
    loss = module(x, torch.tensor(labels), torch.tensor(h))
    loss.backward()
    want, want_grad = reference(logits, labels, h, ignore, mode)
    np.testing.assert_allclose(loss.item(), want, rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), want_grad, rtol=1e-4, atol=1e-7)


def test_identity_h_equals_softmax_with_loss():
    logits, labels, _ = data((5, 3, 1))
    eye = np.eye(3, dtype=np.float32)
    infogain = build(TEXT, [logits.shape, labels.shape, eye.shape])
    softmax = build('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l"',
                    [logits.shape, labels.shape])
    a = infogain(torch.tensor(logits), torch.tensor(labels), torch.tensor(eye))
    b = softmax(torch.tensor(logits), torch.tensor(labels))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("legacy_dims", [False, True], ids=["shape", "num_channels_h_w"])
def test_h_from_binaryproto_source(tmp_path, legacy_dims):
    logits, labels, h = data()
    blob = caffe_pb2.BlobProto()
    if legacy_dims:
        blob.num, blob.channels, blob.height, blob.width = 1, 1, 4, 4
    else:
        blob.shape.dim.extend([4, 4])
    blob.data.extend(h.reshape(-1).tolist())
    path = tmp_path / "H.binaryproto"
    path.write_bytes(blob.SerializeToString())
    text = ('type: "InfogainLoss" bottom: "x" bottom: "y" top: "loss" top: "prob" '
            f'infogain_loss_param {{ source: "{path}" }}')
    module = build(text, [logits.shape, labels.shape])
    x = torch.tensor(logits, requires_grad=True)
    loss, prob = module(x, torch.tensor(labels))
    loss.backward()
    want, want_grad = reference(logits, labels, h, None, "VALID")
    np.testing.assert_allclose(loss.item(), want, rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), want_grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(prob, torch.softmax(x, 1).detach())
    assert not prob.requires_grad


def test_missing_source_file_is_a_build_error(tmp_path):
    text = ('type: "InfogainLoss" bottom: "x" bottom: "y" top: "loss" '
            f'infogain_loss_param {{ source: "{tmp_path / "nope.binaryproto"}" }}')
    with pytest.raises(BuildError, match="cannot read"):
        build(text, [(2, 3), (2,)])


def test_no_matrix_is_a_build_error():
    with pytest.raises(BuildError, match="infogain matrix"):
        build('type: "InfogainLoss" bottom: "x" bottom: "y" top: "loss"', [(2, 3), (2,)])


def test_wrong_matrix_size_is_a_build_error():
    with pytest.raises(BuildError, match="3x3"):
        build(TEXT, [(2, 3), (2,), (2, 2)])


def test_deprecated_normalize_is_refused():
    with pytest.raises(BuildError, match="normalize"):
        build(TEXT + "loss_param { normalize: true }", [(2, 3), (2,), (3, 3)])


@pytest.mark.parametrize("alias", ["INFOGAIN_LOSS", "infogain_loss"])
def test_aliases(alias):
    assert find_layer_spec(alias).type == "InfogainLoss"
