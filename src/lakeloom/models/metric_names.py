"""Metric names, which direction is better, and the default metric per task.

Kept apart from the computations (:mod:`lakeloom.models.metrics`) so that ranking runs and
moving aliases do not import scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from difflib import get_close_matches

from lakeloom.errors import InvalidArgument

__all__ = [
    "CLASSIFICATION_METRICS",
    "LOWER_IS_BETTER",
    "REGRESSION_METRICS",
    "check_metric",
    "default_metric",
    "higher_is_better",
]

CLASSIFICATION_METRICS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "pr_auc",
    "log_loss",
)
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
#: Metrics where a smaller value is better (all others: larger is better).
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape", "training_time_seconds"})


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better."""
    return metric not in LOWER_IS_BETTER


def default_metric(task: str) -> str:
    """The metric lakeloom ranks by when none is given."""
    return {"binary": "roc_auc", "multiclass": "f1_weighted"}.get(task, "rmse")


def check_metric(metric: str, available: Sequence[str], where: str) -> str:
    """``metric`` if it is in ``available``, else a one-line error with close matches."""
    if metric in available:
        return metric
    known = sorted(set(available))
    close = get_close_matches(str(metric), known, n=2, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise InvalidArgument(
        f"metric {metric!r} is not available {where}; {hint}available: {', '.join(known) or 'none'}"
    )
