"""PNG plots of metric-learning results: the ROC curve of pair verification and a scatter of
2-D embeddings. matplotlib is an optional dependency (the ``examples`` extra); it is
imported on first use with the non-interactive Agg backend."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from caffe2torch.errors import CaffeError, WriteError
from caffe2torch.metric.verification import RocCurve


class MissingExtraError(CaffeError):
    """An optional dependency needed for this feature is not installed."""


def require_matplotlib() -> None:
    """Raise MissingExtraError now if plots could not be drawn later."""
    _pyplot()


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError(
            "drawing plots needs matplotlib, which is not installed",
            hint="pip install 'caffe2torch[examples]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> None:
    plt = _pyplot()
    try:
        fig.savefig(os.fspath(path), dpi=100, bbox_inches="tight")
    except OSError as e:
        raise WriteError(f"cannot write the plot: {e.strerror or e}", path=os.fspath(path),
                         hint="check that the folder exists and is writable") from None
    finally:
        plt.close(fig)


def to_2d(features: np.ndarray) -> tuple[np.ndarray, bool]:
    """N x D features as N x 2 points: themselves when D is 2, else their first two
    principal components; the flag says whether they were projected."""
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if x.shape[1] == 2:
        return x, False
    if x.shape[1] < 2:
        raise ValueError(f"a scatter needs at least 2 feature dimensions, got {x.shape[1]}")
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T, True


def operating_point(curve: RocCurve, threshold: float) -> tuple[float, float]:
    """(false positive rate, true positive rate) of the rule "same when distance <=
    threshold": the last point of the curve whose threshold does not exceed it."""
    k = max(int(np.searchsorted(curve.thresholds, threshold, side="right")) - 1, 0)
    return float(curve.fpr[k]), float(curve.tpr[k])


def save_roc_png(curve: RocCurve, path: str | os.PathLike[str],
                 title: str = "pair verification ROC", *, eer: float | None = None,
                 threshold: float | None = None) -> None:
    """Draw ``curve`` (false positive rate against true positive rate) into ``path``, with
    the equal-error point (``eer``) and the operating point of ``threshold`` marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(curve.fpr, curve.tpr)
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    if eer is not None:
        ax.plot([0, 1], [1, 0], ls=":", c="lightgrey")  # where FPR = FNR
        ax.plot([eer], [1 - eer], "o", c="tab:red", label=f"EER {eer:.3f}")
    if threshold is not None:
        fpr, tpr = operating_point(curve, threshold)
        ax.plot([fpr], [tpr], "s", c="tab:green",
                label=f"threshold {threshold:.4g} (FPR {fpr:.3f}, TPR {tpr:.3f})")
    if eer is not None or threshold is not None:
        ax.legend(loc="lower right", fontsize="small")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title,
           xlim=(0, 1), ylim=(0, 1.01))
    _save(fig, path)


def save_embedding_scatter_png(features_2d: np.ndarray, labels: np.ndarray | None,
                               path: str | os.PathLike[str],
                               title: str = "embeddings in the learned 2-D feature space"
                               ) -> None:
    """Scatter N x 2 ``features_2d`` into ``path``, coloured by ``labels`` when given."""
    pts = np.asarray(features_2d, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"a scatter needs N x 2 features, got shape {pts.shape}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=4)
    else:
        classes, colour = np.unique(np.asarray(labels).ravel(), return_inverse=True)
        drawn = ax.scatter(pts[:, 0], pts[:, 1], c=colour, s=4,
                           cmap="tab10" if len(classes) <= 10 else "viridis")
        if len(classes) <= 10:
            handles = [plt.Line2D([], [], ls="", marker="o", ms=4,
                                  color=drawn.cmap(drawn.norm(k))) for k in range(len(classes))]
            ax.legend(handles, [str(c) for c in classes], title="label", fontsize="small",
                      loc="best")
        else:
            fig.colorbar(drawn, ax=ax, label="label index")
    ax.set(title=title)
    _save(fig, path)


__all__ = [
    "MissingExtraError",
    "operating_point",
    "require_matplotlib",
    "save_embedding_scatter_png",
    "save_roc_png",
    "to_2d",
]
