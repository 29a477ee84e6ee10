"""Feature-aware models: logged with their lookups, scored from keys (offline and online)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.features import FeatureLookup, TrainingSet

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
N = 30


def _store(ws: Workspace) -> TrainingSet:
    fs = ws.features
    ids = np.repeat(np.arange(1, N + 1), 2)
    days = np.tile([0, 10], N)
    fs.create_table(
        "features.activity",
        "customer_id",
        "ts",
        df=pa.table(
            {
                "customer_id": pa.array(ids, pa.int64()),
                "ts": pa.array([T0 + timedelta(days=int(d)) for d in days], TS),
                # before day 10 activity says nothing; from day 10 it gives the label away
                "activity": pa.array(np.where(days == 0, 1.0, (ids % 2) * 10.0)),
            }
        ),
    )
    fs.create_table(
        "features.profile",
        "customer_id",
        df=pa.table({"customer_id": np.arange(1, N + 1), "age": np.arange(1, N + 1) + 20.0}),
    )
    labels = pd.DataFrame(
        {
            "customer_id": np.arange(1, N + 1),
            "label_date": [T0 + timedelta(days=12)] * N,
            "churned": np.arange(1, N + 1) % 2,
        }
    )
    return fs.create_training_set(
        labels,
        [
            FeatureLookup(
                "features.activity",
                "customer_id",
                timestamp_lookup_key="label_date",
                default_values={"activity": -1.0},
            ),
            FeatureLookup("features.profile", "customer_id", default_values={"age": 40.0}),
        ],
        label="churned",
        exclude_columns=["customer_id", "label_date"],
    )


def _fit(ts: TrainingSet) -> LogisticRegression:
    df = ts.load_df()
    return LogisticRegression().fit(df[ts.feature_columns], df["churned"])


def test_log_and_score_with_keys_only(ml_ws: Workspace) -> None:
    ts = _store(ml_ws)
    model = _fit(ts)
    info = ml_ws.features.log_model(
        model, "model", flavor=mlflow.sklearn, training_set=ts, registered_model_name="churn"
    )
    assert info.registered_model_version == 1
    keys = pd.DataFrame(
        {
            "customer_id": [1, 2, 1, 99],
            "label_date": [T0 + timedelta(days=12)] * 2 + [T0 + timedelta(days=5)] * 2,
        }
    )
    scored = ml_ws.engine.to_arrow(
        ml_ws.score_batch("models:/churn/1", keys, include_features=True)
    ).to_pandas()
    assert scored["activity"].tolist() == [10.0, 0.0, 1.0, -1.0]  # as of each row's time
    assert scored["age"].tolist() == [21.0, 22.0, 21.0, 40.0]  # unknown key: the default
    features = scored[["activity", "age"]]
    assert scored["prediction"].tolist() == model.predict(features).tolist()
    # Without the time column, each key's latest row; with the features given, no lookup.
    latest = ml_ws.score_batch("models:/churn/1", keys[["customer_id"]], include_features=True)
    assert ml_ws.engine.to_arrow(latest).column("activity").to_pylist()[2] == 10.0
    provided = ml_ws.score_batch("models:/churn/1", features, feature_source="provided")
    assert provided.column("prediction").to_pylist() == scored["prediction"].tolist()
    # The model records what it was trained on, and the table knows who uses it.
    assert ml_ws.features.describe("features.activity").used_by == ["churn/1"]
    again = ml_ws.features.rebuild_training_set("models:/churn/1", labels=ts._labels)
    assert again.to_arrow().equals(ts.to_arrow())
    # A plain MLflow user gets the same: the model fetches its features itself.
    mlflow.set_tracking_uri(ml_ws.tracking.tracking_uri)
    mlflow.set_registry_uri(ml_ws.tracking.registry_uri)
    loaded = mlflow.pyfunc.load_model("models:/churn/1")
    assert loaded.predict(keys).tolist() == scored["prediction"].tolist()


def test_score_batch_errors_and_plain_models(ml_ws: Workspace) -> None:
    ts = _store(ml_ws)
    model = _fit(ts)
    ml_ws.features.log_model(
        model, "model", flavor="sklearn", training_set=ts, registered_model_name="m"
    )
    with pytest.raises(SchemaMismatch, match="looks its features up by customer_id"):
        ml_ws.score_batch("models:/m/1", pd.DataFrame({"id": [1]}))
    with pytest.raises(InvalidArgument, match="already has a column 'prediction'"):
        ml_ws.score_batch("models:/m/1", pd.DataFrame({"customer_id": [1], "prediction": [0]}))
    # One entry point for every model: a plain model scores its input columns.
    plain = ml_ws.score_batch(model, pd.DataFrame({"activity": [10.0, 0.0], "age": [30.0, 30.0]}))
    assert plain.column("prediction").to_pylist() == [1, 0]
    with pytest.raises(InvalidArgument, match="needs a feature-aware model"):
        ml_ws.score_batch(
            model, pd.DataFrame({"activity": [1.0], "age": [1.0]}), feature_source="online"
        )
    with pytest.raises(InvalidArgument, match="flavor"):
        ml_ws.features.log_model(model, "model", flavor="nope", training_set=ts)


def test_online_scoring_matches_offline_latest(ml_ws: Workspace) -> None:
    ts = _store(ml_ws)
    model = _fit(ts)
    ml_ws.features.log_model(
        model, "model", flavor=mlflow.sklearn, training_set=ts, registered_model_name="m"
    )
    fs = ml_ws.features
    fs.publish_table("features.activity")
    fs.publish_table("features.profile")
    assert fs.get_online_features("features.profile", [3, 999]) == [
        {"customer_id": 3, "age": 23.0},
        None,
    ]
    keys = pd.DataFrame({"customer_id": [1, 2, 999]})
    online = fs.score_batch("models:/m/1", keys, feature_source="online", include_features=True)
    offline = fs.score_batch("models:/m/1", keys, include_features=True)
    assert online.to_pylist() == offline.to_pylist()
    # A serving runtime attaches its store to the unwrapped model.
    mlflow.set_tracking_uri(ml_ws.tracking.tracking_uri)
    mlflow.set_registry_uri(ml_ws.tracking.registry_uri)
    loaded = mlflow.pyfunc.load_model("models:/m/1")
    loaded.unwrap_python_model().attach_online_store(fs.online_store)
    assert loaded.predict(keys).tolist() == offline.column("prediction").to_pylist()


def test_online_features_of_a_model_by_its_uri(ml_ws: Workspace) -> None:
    ts = _store(ml_ws)
    ml_ws.features.log_model(
        _fit(ts), "model", flavor=mlflow.sklearn, training_set=ts, registered_model_name="m"
    )
    for table in ("features.activity", "features.profile"):
        ml_ws.features.publish_table(table)
    got = ml_ws.features.get_online_features("models:/m/1", [1, {"customer_id": 2}, 99])
    # Every looked-up feature, each key's latest row; a key no table knows is None.
    assert got == [
        {"customer_id": 1, "activity": 10.0, "age": 21.0},
        {"customer_id": 2, "activity": 0.0, "age": 22.0},
        None,
    ]
    assert ml_ws.features.get_online_features("models:/m/1", [1], ["age"]) == [
        {"customer_id": 1, "age": 21.0}
    ]
    with pytest.raises(InvalidArgument, match="customer_id"):
        ml_ws.features.get_online_features("models:/m/1", [(1, 2)])
