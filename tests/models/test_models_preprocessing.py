"""Feature planning and the preprocessing that is part of every saved model."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lakeloom.errors import SchemaMismatch
from lakeloom.models.preprocessing import (
    build_model_pipeline,
    normalise_features,
    plan_features,
)


def test_plan_drops_ids_dates_and_keeps_types(mixed_frame: pd.DataFrame) -> None:
    plan = plan_features(mixed_frame, "churned", exclude=["segment", "spend"])
    assert plan.numeric == ("income", "calls")
    assert plan.categorical == ("plan", "opt_in")
    assert plan.features == ("plan", "income", "calls", "opt_in")
    assert plan.dropped["customer_id"].startswith("an identifier")
    assert plan.dropped["signup"].startswith("a date/time column")
    assert plan.dropped["segment"] == "excluded"


def test_explicit_features_are_checked(mixed_frame: pd.DataFrame) -> None:
    plan = plan_features(mixed_frame, "churned", features=["customer_id", "income"])
    assert plan.features == ("customer_id", "income")  # an explicit id is kept
    with pytest.raises(SchemaMismatch, match="'nope'"):
        plan_features(mixed_frame, "churned", features=["nope"])
    with pytest.raises(SchemaMismatch, match="date/time"):
        plan_features(mixed_frame, "churned", features=["signup"])
    only_dates = mixed_frame[["signup", "churned"]]
    with pytest.raises(SchemaMismatch, match="no usable feature columns"):
        plan_features(only_dates, "churned")


def test_normalise_widens_integers(mixed_frame: pd.DataFrame) -> None:
    plan = plan_features(mixed_frame, "churned")
    out = normalise_features(mixed_frame, plan)
    assert out["calls"].dtype == np.int64
    assert out["income"].dtype == np.float64
    assert list(out.columns) == list(plan.features)


def test_pipeline_handles_missing_values_and_unseen_levels(mixed_frame: pd.DataFrame) -> None:
    plan = plan_features(mixed_frame, "churned", exclude=["segment", "spend"])
    X = normalise_features(mixed_frame, plan)
    pipeline = build_model_pipeline(plan, LogisticRegression(max_iter=500), scale=True)
    pipeline.fit(X, mixed_frame["churned"])
    new = X.head(3).copy()
    new["plan"] = ["enterprise", None, "basic"]  # a level never seen in training, a null
    new["income"] = [np.nan, np.nan, 10.0]
    with warnings.catch_warnings():
        # scikit-learn says it encodes the unseen level as all zeros: that is the point.
        warnings.filterwarnings("ignore", message="Found unknown categories")
        proba = pipeline.predict_proba(new)
    assert proba.shape == (3, 2)
    assert np.isfinite(proba).all()
    # Raw columns of the table (narrower ints, extra columns) work too.
    raw = mixed_frame.drop(columns=["churned"]).head(5)
    assert len(pipeline.predict(raw)) == 5
