"""Evaluation plots as PNG files (matplotlib's Agg canvas: no display, no global state).

Classification: ROC and precision-recall curves, confusion matrix. Regression: residuals
and predicted-vs-actual. Both: feature importance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm

__all__ = ["classification_plots", "importance_plot", "regression_plots"]

_DPI = 100


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    return path


def _curves(
    y_true: np.ndarray[Any, Any], proba: np.ndarray[Any, Any], classes: Sequence[Any]
) -> list[tuple[str, np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """(name, is-this-class, score) per curve: the positive class, or each class."""
    if len(classes) == 2:
        return [(str(classes[1]), y_true == classes[1], proba[:, 1])]
    return [(str(c), y_true == c, proba[:, i]) for i, c in enumerate(classes)]


def classification_plots(
    y_true: Any,
    y_pred: Any,
    proba: np.ndarray[Any, Any] | None,
    classes: Sequence[Any],
    out_dir: Path,
) -> list[Path]:
    """ROC curve, PR curve (when probabilities exist) and confusion matrix in ``out_dir``."""
    y_true = np.asarray(y_true)
    paths: list[Path] = []
    if proba is not None:
        curves = [c for c in _curves(y_true, proba, classes) if 0 < c[1].sum() < len(c[1])]
        if curves:
            fig = Figure(figsize=(5, 4.5))
            ax = fig.add_subplot()
            for name, positive, score in curves:
                fpr, tpr, _ = skm.roc_curve(positive, score)
                auc = skm.roc_auc_score(positive, score)
                ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
            ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
            ax.legend(loc="lower right", fontsize="small")
            paths.append(_save(fig, out_dir / "roc_curve.png"))

            fig = Figure(figsize=(5, 4.5))
            ax = fig.add_subplot()
            for name, positive, score in curves:
                precision, recall, _ = skm.precision_recall_curve(positive, score)
                ap = skm.average_precision_score(positive, score)
                ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
            ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve")
            ax.legend(loc="lower left", fontsize="small")
            paths.append(_save(fig, out_dir / "pr_curve.png"))

    matrix = skm.confusion_matrix(y_true, np.asarray(y_pred), labels=list(classes))
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, [str(c) for c in classes])
    ax.set_yticks(ticks, [str(c) for c in classes])
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
        )
    ax.set(xlabel="Predicted", ylabel="Actual", title="Confusion matrix")
    paths.append(_save(fig, out_dir / "confusion_matrix.png"))
    return paths


def regression_plots(y_true: Any, y_pred: Any, out_dir: Path) -> list[Path]:
    """Residuals and predicted-vs-actual scatter plots in ``out_dir``."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(y_pred, y_true - y_pred, s=8, alpha=0.5)
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="Predicted", ylabel="Residual (actual - predicted)", title="Residuals")
    residuals = _save(fig, out_dir / "residuals.png")

    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(y_true, y_pred, s=8, alpha=0.5)
    low = float(min(y_true.min(), y_pred.min()))
    high = float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="Actual", ylabel="Predicted", title="Predicted vs actual")
    return [residuals, _save(fig, out_dir / "predicted_vs_actual.png")]


def importance_plot(
    importances: Mapping[str, float], out_dir: Path, *, title: str, top: int = 20
) -> Path:
    """A horizontal bar chart of the ``top`` most important features."""
    ranked = sorted(importances.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    names = [k for k, _ in reversed(ranked)]
    values = [v for _, v in reversed(ranked)]
    fig = Figure(figsize=(6, max(2.5, 0.3 * len(names) + 1)))
    ax = fig.add_subplot()
    ax.barh(names, values)
    ax.set(xlabel="Importance", title=title)
    return _save(fig, out_dir / "feature_importance.png")
