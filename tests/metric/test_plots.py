"""The PNG plots: written, non-empty, real PNG files; a clear error without matplotlib."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from caffe2torch.errors import CaffeError, WriteError
from caffe2torch.metric import plots
from caffe2torch.metric.verification import roc_curve

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def need_matplotlib():
    pytest.importorskip("matplotlib")


def test_roc_png(tmp_path, need_matplotlib):
    curve = roc_curve(np.array([0.1, 0.4, 0.35, 0.8]), np.array([1, 0, 1, 0]))
    out = tmp_path / "roc.png"
    plots.save_roc_png(curve, out, title="t")
    assert out.read_bytes().startswith(PNG) and out.stat().st_size > 1000


@pytest.mark.parametrize("labels", [None, np.array([0, 1, 1, 2]), np.zeros(4, int),
                                    np.arange(4) * 7], ids=["none", "three", "one", "many"])
def test_scatter_png(tmp_path, need_matplotlib, labels):
    pts = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0], [0.5, 0.5]])
    out = tmp_path / "scatter.png"
    plots.save_embedding_scatter_png(pts, labels, out)
    assert out.read_bytes().startswith(PNG) and out.stat().st_size > 1000


def test_scatter_many_classes_uses_a_colour_bar(tmp_path, need_matplotlib):
    rng = np.random.default_rng(0)
    out = tmp_path / "many.png"
    plots.save_embedding_scatter_png(rng.normal(size=(60, 2)), np.arange(60) % 12, out)
    assert out.stat().st_size > 1000


def test_scatter_needs_two_columns(tmp_path, need_matplotlib):
    with pytest.raises(ValueError, match="N x 2"):
        plots.save_embedding_scatter_png(np.zeros((3, 3)), None, tmp_path / "x.png")


def test_unwritable_path_is_a_write_error(tmp_path, need_matplotlib):
    curve = roc_curve(np.array([0.1, 0.2]), np.array([1, 0]))
    with pytest.raises(WriteError) as err:
        plots.save_roc_png(curve, tmp_path / "missing" / "roc.png")
    assert err.value.path.endswith("roc.png")


def test_to_2d():
    pts = np.array([[1.0, 2.0], [3.0, 4.0]])
    same, projected = plots.to_2d(pts)
    assert not projected and np.array_equal(same, pts)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 5)) * np.array([5.0, 0.01, 3.0, 0.01, 0.01])
    two, projected = plots.to_2d(x)
    assert projected and two.shape == (50, 2)
    # the two principal components keep almost all of the variance
    assert two.var(axis=0).sum() == pytest.approx((x - x.mean(0)).var(axis=0).sum(), rel=1e-3)
    with pytest.raises(ValueError, match="at least 2"):
        plots.to_2d(np.zeros((3, 1)))


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    curve = roc_curve(np.array([0.1, 0.2]), np.array([1, 0]))
    with pytest.raises(CaffeError) as err:
        plots.save_roc_png(curve, tmp_path / "roc.png")
    assert isinstance(err.value, plots.MissingExtraError)
    assert "matplotlib" in err.value.message and "examples" in err.value.hint
    assert not (tmp_path / "roc.png").exists()
