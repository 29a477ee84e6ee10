"""Batch scoring of the models that need more than their input: feature-aware and Spark ML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument
from lakeloom.features import FeatureLookup
from lakeloom.settings import SparkSettings

N = 60
SPARK_TEST_SETTINGS = SparkSettings(master="local[2]", conf={"spark.sql.shuffle.partitions": "2"})


@pytest.fixture(scope="module")
def feature_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with a feature table and a registered feature-aware model."""
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    ws = Workspace.init(tmp_path_factory.mktemp("fa") / "ws")
    ids = np.arange(1, N + 1)
    ws.features.create_table(
        "features.bs_profile",
        "customer_id",
        df=pd.DataFrame({"customer_id": ids, "age": 20.0 + ids, "visits": (ids % 7) * 1.0}),
    )
    labels = pd.DataFrame({"customer_id": ids, "churned": (ids % 2).astype("int64")})
    ts = ws.features.create_training_set(
        labels,
        [FeatureLookup("features.bs_profile", "customer_id")],
        label="churned",
        exclude_columns=["customer_id"],
    )
    df = ts.load_df()
    model = LogisticRegression().fit(df[ts.feature_columns], df["churned"])
    ws.features.log_model(
        model,
        "model",
        flavor=mlflow.sklearn,
        training_set=ts,
        registered_model_name="fa_model",
        experiment="fa",
    )
    ws.mlflow_client.set_registered_model_alias("fa_model", "production", "1")
    ws.tables.write("raw.fa_keys", pd.DataFrame({"customer_id": ids[::-1].copy()}))
    try:
        yield ws
    finally:
        ws.close()
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def _sorted(ws: Workspace, table: str) -> pd.DataFrame:
    frame = ws.engine.to_arrow(ws.tables.read(table)).to_pandas()
    return frame.sort_values("customer_id").reset_index(drop=True)


def test_feature_aware_model_looks_its_features_up(feature_ws: Workspace) -> None:
    ws = feature_ws
    result = ws.score_batch(
        "models:/fa_model@production", "raw.fa_keys", output_table="predictions.fa"
    )
    assert result.rows == N
    out = _sorted(ws, "predictions.fa")
    assert list(out.columns[:4]) == ["customer_id", "prediction", "probability_0", "probability_1"]
    keys = pd.DataFrame({"customer_id": np.arange(1, N + 1)})
    expected = ws.engine.to_arrow(ws.score_batch("models:/fa_model@production", keys)).to_pandas()
    expected = expected.sort_values("customer_id").reset_index(drop=True)
    assert out.prediction.tolist() == expected.prediction.tolist()
    assert out.customer_id.tolist() == list(range(1, N + 1))
    # an input that also holds (stale) feature columns: the looked-up values win
    stale = pd.DataFrame({"customer_id": np.arange(1, N + 1), "age": 0.0, "city": "x"})
    ws.tables.write("raw.fa_wide", stale)
    ws.score_batch("fa_model@production", "raw.fa_wide", output_table="predictions.fa_wide")
    wide = _sorted(ws, "predictions.fa_wide")
    assert list(wide.columns[:2]) == ["customer_id", "prediction"]
    assert wide.prediction.tolist() == expected.prediction.tolist()


@pytest.mark.spark
def test_feature_aware_model_on_spark(feature_ws: Workspace) -> None:
    from lakeloom.engines.spark import SparkEngine

    local = feature_ws.score_batch(
        "fa_model@production", "raw.fa_keys", output_table="predictions.fa_local"
    )
    spark_ws = Workspace.open(feature_ws.root, engine="spark")
    spark_ws.__dict__["engine"] = SparkEngine(SPARK_TEST_SETTINGS)
    try:
        remote = spark_ws.score_batch(
            "fa_model@production", "raw.fa_keys", output_table="predictions.fa_spark"
        )
    finally:
        spark_ws.close()
    assert local.columns == remote.columns
    a = _sorted(feature_ws, "predictions.fa_local").drop(columns=["scored_at"])
    b = _sorted(feature_ws, "predictions.fa_spark").drop(columns=["scored_at"])
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.spark
def test_spark_ml_model_scored_by_spark(tmp_path: Path) -> None:
    from lakeloom.engines.spark import SparkEngine
    from lakeloom.training.spark_ml import train_spark
    from lakeloom.training.train import TrainingContext

    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    ws = Workspace.init(tmp_path / "ws")
    ws.close()
    ws = Workspace.open(tmp_path / "ws", engine="spark")
    ws.__dict__["engine"] = SparkEngine(SPARK_TEST_SETTINGS)
    try:
        rng = np.random.default_rng(0)
        n = 200
        frame = pd.DataFrame(
            {
                "customer_id": np.arange(n, dtype="int64"),
                "tenure": rng.integers(1, 60, n).astype("float64"),
                "plan": rng.choice(["basic", "pro"], n),
            }
        )
        frame["churned"] = ((frame.tenure < 20) | (frame.plan == "basic")).astype("int64")
        ws.tables.write("raw.sml", frame)
        result = train_spark(
            TrainingContext(ws.tracking, ws.tables, ws.engine),
            "raw.sml",
            label="churned",
            experiment="sml",
            models=["logistic_regression"],
            cv=0,
            exclude=["customer_id"],
        )
        ws.registry.register(result.best().run_id, name="sml_model")
        ws.tables.write("raw.sml_new", frame.drop(columns=["churned"]))
        scored = ws.score_batch(
            "models:/sml_model/1",
            "raw.sml_new",
            output_table="predictions.sml",
            keys=["customer_id"],
        )
        out = _sorted(ws, "predictions.sml")
        assert scored.rows == n and len(out) == n
        assert list(out.columns) == [
            "customer_id",
            "prediction",
            "probability_0",
            "probability_1",
            "model_name",
            "model_version",
            "run_id",
            "scored_at",
        ]
        assert set(out.prediction) <= {"0", "1"}
        np.testing.assert_allclose(out.probability_0 + out.probability_1, 1.0)
        assert (out.model_name == "sml_model").all() and (out.model_version == 1).all()
        # the same model on the local engine: one clear line, nothing written
        local = Workspace.open(tmp_path / "ws")
        try:
            with pytest.raises(InvalidArgument, match="Spark ML model"):
                local.score_batch(
                    "models:/sml_model/1", "raw.sml_new", output_table="predictions.sml_local"
                )
            assert not local.tables.exists("predictions.sml_local")
        finally:
            local.close()
    finally:
        ws.close()
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
