"""Every input kind ``fit`` accepts, and the same trials for the same seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from mlflow import MlflowClient

from lakeloom import Workspace
from lakeloom.automl import AutoMLClassifier
from lakeloom.features import FeatureLookup

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:flaml")


def _automl(ws: Workspace, **kwargs: object) -> AutoMLClassifier:
    params: dict[str, object] = {
        "target_column": "diagnosis",
        "time_limit_minutes": None,
        "n_trials": 3,
        "models": ["lgbm"],
        "ensemble": False,
        "seed": 5,
        "n_jobs": 1,
        "context": ws,
        **kwargs,
    }
    return AutoMLClassifier(**params)  # type: ignore[arg-type]


def test_polars_and_arrow_give_the_same_trials_for_the_same_seed(
    workspace: Workspace, breast_cancer: pd.DataFrame
) -> None:
    from_polars = _automl(workspace).fit(pl.from_pandas(breast_cancer))
    from_arrow = _automl(workspace).fit(pa.Table.from_pandas(breast_cancer))
    first = from_polars.leaderboard_[["model", "params", "val_loss"]]
    second = from_arrow.leaderboard_[["model", "params", "val_loss"]]
    pd.testing.assert_frame_equal(first, second)
    X = breast_cancer.drop(columns=["diagnosis"]).head(20)
    assert np.allclose(from_polars.predict_proba(X), from_arrow.predict_proba(X))


def test_a_feature_store_training_set_is_fitted_with_its_lineage(workspace: Workspace) -> None:
    fs = workspace.features
    n = 80
    rng = np.random.default_rng(0)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    spend = rng.normal(size=n)
    fs.create_table(
        "features.spend",
        "customer_id",
        "ts",
        df=pa.table(
            {
                "customer_id": pa.array(np.arange(n), pa.int64()),
                "ts": pa.array([t0] * n, pa.timestamp("us", tz="UTC")),
                "spend": spend,
            }
        ),
    )
    labels = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "label_date": [t0 + timedelta(days=1)] * n,
            "churned": (spend > 0).astype(int),
        }
    )
    training_set = fs.create_training_set(
        labels,
        [FeatureLookup("features.spend", "customer_id", timestamp_lookup_key="label_date")],
        label="churned",
        exclude_columns=["customer_id", "label_date"],
    )
    automl = AutoMLClassifier(
        experiment_name="from_training_set",
        time_limit_minutes=None,
        n_trials=2,
        models=["lgbm"],
        ensemble=False,
        context=workspace,
    )
    automl.fit(training_set)  # the label comes from the training set
    assert automl.label_ == "churned" and automl.best_score > 0.8
    assert automl.feature_report_["column"].tolist() == ["spend"]
    run = MlflowClient(workspace.tracking.tracking_uri).get_run(automl.best_run_id)
    assert run.data.params["rows"] == str(n)
