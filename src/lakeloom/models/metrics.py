"""Held-out metrics (names and directions live in :mod:`lakeloom.models.metric_names`).

Classification: ``accuracy``, ``precision``/``recall``/``f1`` (binary, of the positive class),
``precision_weighted``/``recall_weighted``/``f1_weighted``, ``roc_auc``, ``pr_auc`` (average
precision), ``log_loss``. Regression: ``rmse``, ``mae``, ``r2``, ``mape``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.preprocessing import label_binarize

from lakeloom.models.metric_names import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    REGRESSION_METRICS,
    check_metric,
    default_metric,
    higher_is_better,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "LOWER_IS_BETTER",
    "REGRESSION_METRICS",
    "check_metric",
    "classification_metrics",
    "default_metric",
    "higher_is_better",
    "regression_metrics",
]


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: np.ndarray[Any, Any] | None,
    classes: Sequence[Any],
) -> dict[str, float]:
    """Metrics of predicted labels and (when given) class probabilities.

    ``proba`` columns follow ``classes``; for two classes the second is the positive one.
    Metrics that cannot be computed on this data (e.g. ROC AUC on a holdout with one class)
    are left out.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    binary = len(classes) == 2
    out: dict[str, float] = {}
    with warnings.catch_warnings():
        # Precision of a class never predicted is 0 here, which is what it should be.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        out["accuracy"] = float(skm.accuracy_score(y_true, y_pred))
        for name, fn in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            if binary:
                out[name] = float(fn(y_true, y_pred, pos_label=classes[1], zero_division=0))
            out[f"{name}_weighted"] = float(fn(y_true, y_pred, average="weighted", zero_division=0))
        if proba is not None:
            present = set(np.unique(y_true).tolist())
            if len(present) >= 2:
                if binary:
                    positive = y_true == classes[1]
                    out["roc_auc"] = float(skm.roc_auc_score(positive, proba[:, 1]))
                    out["pr_auc"] = float(skm.average_precision_score(positive, proba[:, 1]))
                else:
                    onehot = label_binarize(y_true, classes=list(classes))
                    keep = onehot.sum(axis=0) > 0
                    out["roc_auc"] = float(
                        skm.roc_auc_score(
                            onehot[:, keep], proba[:, keep], average="weighted", multi_class="ovr"
                        )
                    )
                    out["pr_auc"] = float(
                        skm.average_precision_score(
                            onehot[:, keep], proba[:, keep], average="weighted"
                        )
                    )
            out["log_loss"] = float(skm.log_loss(y_true, proba, labels=list(classes)))
    return out


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """RMSE, MAE, R2 and MAPE of predictions."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
        "mape": float(skm.mean_absolute_percentage_error(y_true, y_pred)),
    }
