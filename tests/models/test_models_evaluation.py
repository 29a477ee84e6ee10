"""Evaluation on held-out data: metrics, importances and plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from lakeloom.models.evaluation import evaluate, evaluation_plots, permutation_importances
from lakeloom.models.preprocessing import (
    build_model_pipeline,
    normalise_features,
    plan_features,
)


def test_classification_evaluation_and_plots(mixed_frame: pd.DataFrame, tmp_path: Path) -> None:
    plan = plan_features(mixed_frame, "churned", exclude=["segment", "spend"])
    X = normalise_features(mixed_frame, plan)
    model = build_model_pipeline(plan, LogisticRegression(max_iter=500), scale=True)
    model.fit(X.iloc[:300], mixed_frame["churned"].iloc[:300])
    result = evaluate(model, X.iloc[300:], mixed_frame["churned"].iloc[300:], "binary")
    assert 0.5 < result.metrics["roc_auc"] <= 1.0
    assert result.classes == (0, 1)
    importances = permutation_importances(
        model, X.iloc[300:], mixed_frame["churned"].iloc[300:], "binary", seed=0, n_repeats=2
    )
    assert set(importances) == set(plan.features)
    paths = evaluation_plots(result, tmp_path, importances)
    assert sorted(p.name for p in paths) == [
        "confusion_matrix.png",
        "feature_importance.png",
        "pr_curve.png",
        "roc_curve.png",
    ]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_regression_evaluation_and_plots(mixed_frame: pd.DataFrame, tmp_path: Path) -> None:
    plan = plan_features(mixed_frame, "spend", exclude=["segment", "churned"])
    X = normalise_features(mixed_frame, plan)
    model = build_model_pipeline(plan, RandomForestRegressor(n_estimators=5), scale=False)
    model.fit(X, mixed_frame["spend"])
    result = evaluate(model, X, mixed_frame["spend"], "regression")
    assert set(result.metrics) == {"rmse", "mae", "r2", "mape"}
    names = sorted(p.name for p in evaluation_plots(result, tmp_path))
    assert names == ["predicted_vs_actual.png", "residuals.png"]
