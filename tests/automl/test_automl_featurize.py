"""The automatic feature engineering inside every AutoML model."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

from lakeloom.automl.featurize import AutoFeaturizer, UnseenCategoryWarning
from lakeloom.errors import SchemaMismatch


@pytest.fixture
def raw() -> pd.DataFrame:
    n = 200
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "city": [f"city{i % 60}" for i in range(n)],
            "income": np.where(rng.random(n) < 0.1, np.nan, rng.normal(50, 10, n)),
            "signup": [
                dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 900, n)
            ],
            "opt_in": rng.random(n) < 0.5,
            "constant": 7,
            "empty": [None] * n,
        }
    )


def _action(f: AutoFeaturizer, column: str) -> str:
    return next(r["action"] for r in f.report_ if r["column"] == column)


def test_the_plan_covers_every_column_and_says_what_was_done(raw: pd.DataFrame) -> None:
    y = (raw["plan"] == "basic").astype(int).to_numpy()
    f = AutoFeaturizer(task="binary")
    out = f.fit_transform(raw, y)
    assert _action(f, "customer_id") == "dropped"
    assert _action(f, "constant") == "dropped"
    assert _action(f, "empty") == "dropped"
    assert _action(f, "plan") == "one-hot"
    assert _action(f, "city") == "frequency+target"
    assert _action(f, "signup") == "expand"
    assert _action(f, "opt_in") == "impute+scale"
    assert {
        "income",
        "income__missing",
        "plan__basic",
        "signup__year",
        "signup__days",
        "city__freq",
        "city__target0",
    } <= set(out.columns)
    assert out.dtypes.map(lambda d: d.kind == "f").all()
    assert not out.isna().any().any()
    assert set(f.source_columns().values()) == set(f.used_columns())
    assert "customer_id" not in f.used_columns()


def test_transform_needs_only_the_used_columns_and_warns_on_unseen_levels(
    raw: pd.DataFrame,
) -> None:
    f = AutoFeaturizer(task="regression").fit(raw, np.arange(len(raw), dtype=float))
    new = raw.drop(columns=["customer_id", "empty", "constant"]).head(3).copy()
    new.loc[0, "plan"] = "platinum"
    with pytest.warns(UnseenCategoryWarning, match="plan: 'platinum'"):
        out = f.transform(new)
    assert out.loc[0, ["plan__basic", "plan__standard", "plan__premium"]].sum() == 0
    assert list(out.columns) == f.feature_names_out_
    # A served model meets the same level again and again: it is reported once per level.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenCategoryWarning)
        again = f.transform(new)
    assert again.equals(out)
    new.loc[1, "plan"] = "gold"
    with pytest.warns(UnseenCategoryWarning, match="plan: 'gold'") as caught:
        f.transform(new)
    assert "platinum" not in str(caught[0].message)


def test_missing_or_mistyped_columns_are_clear_errors(raw: pd.DataFrame) -> None:
    f = AutoFeaturizer().fit(raw, np.zeros(len(raw)))
    with pytest.raises(SchemaMismatch, match="'income'"):
        f.transform(raw.drop(columns=["income"]))
    bad = raw.assign(income="lots")
    with pytest.raises(SchemaMismatch, match="must hold numbers"):
        f.transform(bad)


def test_target_encoding_of_training_rows_is_cross_fitted(raw: pd.DataFrame) -> None:
    y = np.where(raw["city"].str.endswith("1"), 1, 0)
    f = AutoFeaturizer(task="binary")
    fitted = f.fit_transform(raw, y)["city__target0"]
    refit = f.transform(raw)["city__target0"]
    assert not np.allclose(fitted, refit)  # out-of-fold during fit, full-data afterwards


def test_iso_date_strings_are_dates() -> None:
    frame = pd.DataFrame(
        {"when": ["2024-01-01", "2024-02-15", "2024-03-30"] * 10, "x": np.arange(30.0)}
    )
    f = AutoFeaturizer().fit(frame, np.arange(30.0))
    assert _action(f, "when") == "expand"
