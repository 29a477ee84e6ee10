"""Scoring a fitted model on held-out data: metrics, plots and feature importance.

Used by training (on the test split) and by the promotion gate (on a holdout table), so a
candidate and the current model are always measured the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from lakeloom.models.labels import is_classification
from lakeloom.models.metrics import classification_metrics, regression_metrics
from lakeloom.models.plots import classification_plots, importance_plot, regression_plots

__all__ = ["Evaluation", "evaluate", "evaluation_plots", "permutation_importances"]


@dataclass(frozen=True)
class Evaluation:
    """Predictions of a model on labelled data, and their metrics."""

    task: str
    metrics: dict[str, float]
    y_true: np.ndarray[Any, Any]
    y_pred: np.ndarray[Any, Any]
    #: Class probabilities (columns follow ``classes``), None for regression or no proba.
    proba: np.ndarray[Any, Any] | None
    classes: tuple[Any, ...]


def _classes(model: Any, y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any]) -> list[Any]:
    known = getattr(model, "classes_", None)
    if known is not None:
        return list(np.asarray(known).tolist())
    return sorted(set(y_true.tolist()) | set(y_pred.tolist()), key=lambda v: (str(type(v)), v))


def evaluate(model: Any, X: pd.DataFrame, y: Any, task: str) -> Evaluation:
    """Predict ``X`` with ``model`` and compute the task's metrics against ``y``.

    ``model`` needs ``predict``; with ``predict_proba`` and ``classes_`` (any scikit-learn
    classifier or lakeloom pipeline) the probability metrics (ROC AUC, PR AUC, log loss)
    are computed too.
    """
    y_true = np.asarray(y)
    y_pred = np.asarray(model.predict(X))
    if y_pred.ndim > 1:
        y_pred = y_pred.reshape(len(y_pred), -1)[:, 0]
    if not is_classification(task):
        return Evaluation(task, regression_metrics(y_true, y_pred), y_true, y_pred, None, ())
    classes = _classes(model, y_true, y_pred)
    proba = None
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        # float32 probabilities (XGBoost) sum to 1 only within float32 precision.
        proba = proba / proba.sum(axis=1, keepdims=True)
    # Compare labels as the model knows them (a holdout read back may hold 1.0 for 1).
    y_true = _align(y_true, classes)
    metrics = classification_metrics(y_true, y_pred, proba, classes)
    return Evaluation(task, metrics, y_true, y_pred, proba, tuple(classes))


def _align(y_true: np.ndarray[Any, Any], classes: Sequence[Any]) -> np.ndarray[Any, Any]:
    if not len(classes) or y_true.dtype == object:
        return y_true
    sample = classes[0]
    if isinstance(sample, bool | np.bool_) and y_true.dtype.kind in "iuf":
        return y_true.astype(bool)
    if isinstance(sample, int | np.integer) and y_true.dtype.kind == "f":
        if np.all(np.mod(y_true, 1) == 0):
            return y_true.astype(np.int64)
    return y_true


def permutation_importances(
    model: Any, X: pd.DataFrame, y: Any, task: str, *, seed: int, n_repeats: int = 3
) -> dict[str, float]:
    """How much the score drops when each raw input column is shuffled (mean over repeats).

    Model-agnostic and measured on the raw columns, so it reads the same for every family.
    """
    scoring = "roc_auc" if task == "binary" else ("accuracy" if task == "multiclass" else "r2")
    result = permutation_importance(
        model, X, np.asarray(y), scoring=scoring, n_repeats=n_repeats, random_state=seed
    )
    return {str(c): float(v) for c, v in zip(X.columns, result.importances_mean, strict=True)}


def evaluation_plots(
    evaluation: Evaluation, out_dir: Path, importances: dict[str, float] | None = None
) -> list[Path]:
    """The task's plots (and a feature-importance chart) as PNG files in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if is_classification(evaluation.task):
        paths = classification_plots(
            evaluation.y_true, evaluation.y_pred, evaluation.proba, evaluation.classes, out_dir
        )
    else:
        paths = regression_plots(evaluation.y_true, evaluation.y_pred, out_dir)
    if importances:
        paths.append(
            importance_plot(importances, out_dir, title="Permutation importance (held-out data)")
        )
    return paths
