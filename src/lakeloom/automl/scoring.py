"""Metrics by FLAML's names, as scores (their natural direction) and as losses (lower is better).

FLAML minimises a loss: ``1 - score`` for metrics where higher is better (``roc_auc``, ``r2``,
``accuracy``...), the metric itself otherwise (``log_loss``, ``mae``...). lakeloom reports
scores to users and compares candidates by loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from lakeloom.errors import InvalidArgument

__all__ = ["Metric", "default_metric", "resolve_metric"]


@dataclass(frozen=True)
class Metric:
    """A metric: its name, direction, and how to compute it from model outputs."""

    name: str
    greater_is_better: bool
    #: ``fn(y_true, output)`` where output is class probabilities (classification) or values.
    fn: Callable[[np.ndarray, np.ndarray], float]

    def score(self, y: np.ndarray, output: np.ndarray) -> float:
        """The metric's value."""
        return float(self.fn(y, output))

    def loss(self, y: np.ndarray, output: np.ndarray) -> float:
        """What FLAML minimises: ``1 - score`` or the metric itself."""
        value = self.score(y, output)
        return 1.0 - value if self.greater_is_better else value

    def score_from_loss(self, loss: float) -> float:
        """Convert a FLAML loss back to the metric's value."""
        return 1.0 - loss if self.greater_is_better else loss


def _labels(proba: np.ndarray) -> np.ndarray:
    return np.argmax(proba, axis=1)


def _auc(y: np.ndarray, proba: np.ndarray, average: str = "macro", multi: str = "ovr") -> float:
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y, proba[:, 1]))
    return float(
        skm.roc_auc_score(
            y, proba, multi_class=multi, average=average, labels=np.arange(proba.shape[1])
        )
    )


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(skm.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=np.arange(proba.shape[1])))


_CLASSIFICATION: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("accuracy", True, lambda y, p: skm.accuracy_score(y, _labels(p))),
        Metric("roc_auc", True, _auc),
        Metric("roc_auc_ovr", True, _auc),
        Metric("roc_auc_ovo", True, lambda y, p: _auc(y, p, multi="ovo")),
        Metric("roc_auc_weighted", True, lambda y, p: _auc(y, p, average="weighted")),
        Metric("log_loss", False, _log_loss),
        Metric("f1", True, lambda y, p: skm.f1_score(y, _labels(p))),
        Metric("macro_f1", True, lambda y, p: skm.f1_score(y, _labels(p), average="macro")),
        Metric("micro_f1", True, lambda y, p: skm.f1_score(y, _labels(p), average="micro")),
        Metric("ap", True, lambda y, p: skm.average_precision_score(y, p[:, 1])),
    ]
}
_REGRESSION: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("r2", True, lambda y, p: skm.r2_score(y, p)),
        Metric("mae", False, lambda y, p: skm.mean_absolute_error(y, p)),
        Metric("mse", False, lambda y, p: skm.mean_squared_error(y, p)),
        Metric("rmse", False, lambda y, p: float(np.sqrt(skm.mean_squared_error(y, p)))),
        Metric("mape", False, lambda y, p: skm.mean_absolute_percentage_error(y, p)),
    ]
}


def default_metric(task: str, n_classes: int = 0) -> str:
    """FLAML's defaults: ROC AUC (binary), log loss (multiclass), R² (regression)."""
    if task == "classification":
        return "roc_auc" if n_classes <= 2 else "log_loss"
    return "r2"


def resolve_metric(name: str | None, task: str, n_classes: int = 0) -> Metric:
    """The metric called ``name`` (``None`` or ``"auto"``: the task's default)."""
    key = default_metric(task, n_classes) if name in (None, "auto") else str(name).lower()
    table = _CLASSIFICATION if task == "classification" else _REGRESSION
    if key not in table:
        raise InvalidArgument(
            f"metric {name!r} is not available for {task}; use one of {', '.join(sorted(table))}"
        )
    if task == "classification" and n_classes > 2 and key in ("f1", "ap"):
        raise InvalidArgument(f"metric {key!r} is for two classes; use macro_f1 or log_loss")
    return table[key]
