"""happynear's InnerProduct forms: ``normalize: true`` and the weight as a second bottom."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build


def test_normalize_renormalises_the_blob_and_uses_plain_gradients() -> None:
    m = build("""name: "fc6" type: "InnerProduct" bottom: "x" top: "fc6"
                 inner_product_param { num_output: 4 normalize: true bias_term: false
                 weight_filler { type: "gaussian" std: 3 } }""", [(5, 3)], phase="TRAIN")
    w = m.blobs[0].detach().double().numpy().copy()
    wn = w / np.sqrt((w * w).sum(1, keepdims=True) + 1e-12)
    x = torch.randn(5, 3, requires_grad=True)
    y = m(x)
    g = torch.randn_like(y)
    y.backward(g)
    xd, gd = x.detach().double().numpy(), g.double().numpy()
    np.testing.assert_allclose(y.detach().numpy(), xd @ wn.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.blobs[0].detach().numpy(), wn, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.blobs[0].grad.numpy(), gd.T @ xd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), gd @ wn, rtol=1e-5, atol=1e-6)


def test_weight_from_second_bottom() -> None:
    m = build("""name: "ip2" type: "InnerProduct" bottom: "x" bottom: "w" top: "ip2"
                 inner_product_param { bias_term: false }""", [(4, 2), (10, 2)])
    x, w = torch.randn(4, 2, requires_grad=True), torch.randn(10, 2, requires_grad=True)
    y = m(x, w)
    torch.testing.assert_close(y, x @ w.t())
    y.sum().backward()
    torch.testing.assert_close(w.grad, torch.ones(4, 10).t() @ x.detach())


def test_plain_inner_product_unchanged() -> None:
    m = build("""name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
                 inner_product_param { num_output: 2 weight_filler { type: "gaussian" } }""",
              [(3, 4)])
    x = torch.randn(3, 4)
    torch.testing.assert_close(m(x), x @ m.blobs[0].t() + m.blobs[1])


def test_normalize_with_transpose_is_refused() -> None:
    from caffe2torch.errors import BuildError

    with pytest.raises(BuildError, match="transpose"):
        build("""name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
                 inner_product_param { num_output: 2 normalize: true transpose: true }""",
              [(3, 4)])


def test_normalize_exports_the_normalised_weight(tmp_path) -> None:
    """While tracing the blob is left alone, so the exported graph must use the normalised
    copy: an ONNX of a net whose weights are not unit rows yet still reproduces PyTorch."""
    pytest.importorskip("onnxruntime")
    import caffe2torch as c2t
    from caffe2torch.export import export_onnx

    proto = tmp_path / "net.prototxt"
    proto.write_text("""
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "fc6" type: "InnerProduct" bottom: "x" top: "fc6"
                inner_product_param { num_output: 4 normalize: true bias_term: false
                weight_filler { type: "gaussian" std: 3 } } }""")
    net = c2t.load_net(proto, phase="TEST")
    report = export_onnx(net, tmp_path / "m.onnx", verify=True)
    assert report.max_diff["fc6"] <= 1e-5 * report.scale["fc6"] + 1e-6
