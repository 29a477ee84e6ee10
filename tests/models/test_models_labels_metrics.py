"""Task inference, label checks and metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.models.labels import check_label, infer_task
from lakeloom.models.metrics import (
    check_metric,
    classification_metrics,
    higher_is_better,
    regression_metrics,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1, 1, 0], "binary"),
        ([True, False, True], "binary"),
        (["yes", "no", "maybe"], "multiclass"),
        ([1, 2, 3, 2], "multiclass"),
        (list(range(50)), "regression"),
        ([0.5, 1.5, 2.25], "regression"),
        ([0.0, 1.0, 1.0], "binary"),
    ],
)
def test_infer_task(values: list[object], expected: str) -> None:
    assert infer_task(pd.Series(values)) == expected


def test_task_override() -> None:
    assert infer_task(pd.Series([1, 2, 3]), "regression") == "regression"
    assert infer_task(pd.Series([1.0, 2.0, 1.0]), "classification") == "binary"
    with pytest.raises(InvalidArgument, match="needs a numeric label"):
        infer_task(pd.Series(["a", "b"]), "regression")
    with pytest.raises(InvalidArgument, match="task must be one of"):
        infer_task(pd.Series([0, 1]), "ranking")


def test_bad_labels() -> None:
    df = pd.DataFrame({"x": [1, 2, 3], "y": [1, 1, 1], "n": [None, None, None]})
    with pytest.raises(SchemaMismatch, match="label column 'z' is not in t"):
        check_label(df, "z", "t")
    with pytest.raises(InvalidArgument, match="is constant"):
        check_label(df, "y", "t")
    with pytest.raises(InvalidArgument, match="only missing values"):
        check_label(df, "n", "t")
    with pytest.raises(InvalidArgument, match="has no rows"):
        check_label(df.head(0), "y", "t")


def test_classification_metrics_binary_and_multiclass() -> None:
    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9], [0.45, 0.55]])
    pred = proba.argmax(axis=1)
    m = classification_metrics(y, pred, proba, [0, 1])
    assert set(m) == {
        "accuracy", "precision", "recall", "f1", "precision_weighted", "recall_weighted",
        "f1_weighted", "roc_auc", "pr_auc", "log_loss",
    }  # fmt: skip
    assert m["roc_auc"] == 1.0
    assert math.isclose(m["accuracy"], 5 / 6)
    y3 = np.array(["a", "b", "c", "a"])
    p3 = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    m3 = classification_metrics(y3, np.array(["a", "b", "c", "a"]), p3, ["a", "b", "c"])
    assert "precision" not in m3
    assert m3["roc_auc"] == 1.0
    # A holdout with one class: no AUC, the rest still computed.
    one = classification_metrics(np.array([1, 1]), np.array([1, 0]), proba[:2], [0, 1])
    assert "roc_auc" not in one
    assert "log_loss" in one


def test_regression_metrics_and_directions() -> None:
    m = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert math.isclose(m["rmse"], math.sqrt(1 / 3))
    assert math.isclose(m["mae"], 1 / 3)
    assert not higher_is_better("rmse")
    assert not higher_is_better("log_loss")
    assert higher_is_better("roc_auc")
    with pytest.raises(InvalidArgument, match="did you mean roc_auc"):
        check_metric("roc_acu", ["roc_auc", "accuracy"], "here")
