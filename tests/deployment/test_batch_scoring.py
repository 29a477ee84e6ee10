"""Table-to-table batch scoring: ``ws.score_batch(..., output_table=...)`` on both engines.

Uses the session registry of ``conftest.py`` (``churn_model`` v1-3, sklearn pipelines on
four columns). Each test writes its own tables (names carry the test's name).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deployment_support import COLUMNS, Registry, churn_frame

from lakeloom import Workspace
from lakeloom.errors import (
    InvalidArgument,
    InvalidTableName,
    ModelNotFound,
    SchemaMismatch,
    TableNotFound,
)
from lakeloom.settings import SparkSettings

PROVENANCE = ["model_name", "model_version", "run_id", "scored_at"]
SPARK_TEST_SETTINGS = SparkSettings(master="local[2]", conf={"spark.sql.shuffle.partitions": "2"})


def customers(n: int, seed: int = 3) -> pd.DataFrame:
    """New customers: an id and the model's four columns (no label)."""
    frame = churn_frame(n, seed)[COLUMNS]
    frame.insert(0, "customer_id", np.arange(1, n + 1, dtype="int64"))
    return frame


def output(ws: Workspace, table: str) -> pd.DataFrame:
    frame = ws.engine.to_arrow(ws.tables.read(table)).to_pandas()
    return frame.sort_values("customer_id").reset_index(drop=True)


def run_id_of(registry: Registry, name: str, alias: str) -> str:
    return str(registry.ws.mlflow_client.get_model_version_by_alias(name, alias).run_id)


@pytest.fixture(scope="module")
def spark_ws(registry: Registry) -> Iterator[Workspace]:
    """The registry's workspace on the spark engine (the test session's one Spark session)."""
    from lakeloom.engines.spark import SparkEngine

    ws = Workspace.open(registry.ws.root, engine="spark")
    engine = SparkEngine(SPARK_TEST_SETTINGS)
    ws.__dict__["engine"] = engine
    try:
        yield ws
    finally:
        ws.close()
        Workspace.open(registry.ws.root)  # point MLflow back at the local workspace


# -- the output -------------------------------------------------------------------------
def test_scores_a_table_into_a_table(registry: Registry) -> None:
    ws = registry.ws
    frame = customers(300)
    ws.tables.write("raw.bs_new_customers", frame)
    result = ws.score_batch(
        "models:/churn_model@production",
        "raw.bs_new_customers",
        output_table="predictions.bs_churn",
    )
    assert (result.version, result.rows, result.mode) == (0, 300, "overwrite")
    assert (result.model_name, result.model_version) == ("churn_model", 1)
    assert result.input_table == "raw.bs_new_customers" and result.input_version == 0
    out = output(ws, "predictions.bs_churn")
    assert list(out.columns) == [
        "customer_id",
        "prediction",
        "probability_0",
        "probability_1",
        *PROVENANCE,
    ]
    model = registry.models["churn_model/1"]
    X = frame[COLUMNS]
    assert out.customer_id.tolist() == frame.customer_id.tolist()
    assert out.prediction.tolist() == model.predict(X).tolist()
    np.testing.assert_allclose(out[["probability_0", "probability_1"]], model.predict_proba(X))
    assert set(out.model_name) == {"churn_model"} and set(out.model_version) == {1}
    assert set(out.run_id) == {run_id_of(registry, "churn_model", "production")}
    assert out.scored_at.nunique() == 1 and str(out.scored_at.dt.tz) == "UTC"


def test_rerunning_is_idempotent_and_append_adds(registry: Registry) -> None:
    ws = registry.ws
    ws.tables.write("raw.bs_idem", customers(120))
    args = ("churn_model@production", "raw.bs_idem")
    first = ws.score_batch(*args, output_table="predictions.bs_idem")
    before = output(ws, "predictions.bs_idem").drop(columns=["scored_at"])
    again = ws.score_batch(*args, output_table="predictions.bs_idem")
    assert again.version == first.version + 1
    pd.testing.assert_frame_equal(
        output(ws, "predictions.bs_idem").drop(columns=["scored_at"]), before
    )
    merged = ws.score_batch(*args, output_table="predictions.bs_idem", mode="merge")
    merged_again = ws.score_batch(*args, output_table="predictions.bs_idem", mode="merge")
    assert merged_again.version == merged.version + 1
    after = output(ws, "predictions.bs_idem")
    pd.testing.assert_frame_equal(after.drop(columns=["scored_at"]), before)
    assert (after.scored_at == merged_again.scored_at).all()  # rows replaced, not added
    ws.score_batch(*args, output_table="predictions.bs_idem", mode="append")
    assert len(output(ws, "predictions.bs_idem")) == 240


def test_merge_updates_matching_keys_and_keeps_others(registry: Registry) -> None:
    ws = registry.ws
    ws.tables.write("raw.bs_merge", customers(50))
    ws.score_batch("churn_model@production", "raw.bs_merge", output_table="predictions.bs_m")
    newer = customers(80, seed=9).iloc[40:]  # ids 41-80: 10 overlap, 30 new
    ws.tables.write("raw.bs_merge_new", newer)
    ws.score_batch(
        "churn_model@challenger",
        "raw.bs_merge_new",
        output_table="predictions.bs_m",
        mode="merge",
        keys=["customer_id"],
    )
    out = output(ws, "predictions.bs_m")
    assert out.customer_id.tolist() == list(range(1, 81))
    by_version = out.groupby("model_version").customer_id.agg(["min", "max", "count"])
    assert by_version.loc[1].tolist() == [1, 40, 40]
    assert by_version.loc[2].tolist() == [41, 80, 40]


def test_explicit_keys_and_a_dataframe_input(registry: Registry) -> None:
    ws = registry.ws
    frame = customers(40)
    frame["region"] = "eu"
    result = ws.score_batch(
        "models:/churn_model/3",
        frame,
        output_table="predictions.bs_frame",
        keys=["customer_id", "region"],
    )
    assert result.input_table is None and result.rows == 40
    out = output(ws, "predictions.bs_frame")
    assert list(out.columns[:3]) == ["customer_id", "region", "prediction"]
    assert (
        out.prediction.tolist() == registry.models["churn_model/3"].predict(frame[COLUMNS]).tolist()
    )


# -- bad input: one line, nothing written -----------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": "models:/no_such_model@production"}, ModelNotFound, "no registered model"),
        ({"model": "churn_model@nope"}, ModelNotFound, "has no alias 'nope'"),
        ({"model": "models:/churn_model/99"}, ModelNotFound, "has no version 99"),
        ({"data": "raw.bs_missing"}, TableNotFound, "raw.bs_missing"),
        ({"output_table": "lakeloom.predictions"}, InvalidTableName, "reserved"),
        ({"output_table": "no-schema"}, InvalidTableName, "no-schema"),
        ({"mode": "upsert"}, InvalidArgument, "mode must be one of"),
        ({"keys": ["nope"]}, SchemaMismatch, "'nope' not in the input"),
    ],
)
def test_bad_input_writes_nothing(
    registry: Registry, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    ws = registry.ws
    if not ws.tables.exists("raw.bs_bad"):
        ws.tables.write("raw.bs_bad", customers(10))
    call = {
        "model": "churn_model@production",
        "data": "raw.bs_bad",
        "output_table": "predictions.bs_bad",
        **kwargs,
    }
    model, data, out = call.pop("model"), call.pop("data"), call["output_table"]
    with pytest.raises(error, match=message) as info:
        ws.score_batch(model, data, **call)
    assert "\n" not in str(info.value)
    assert not ws.tables.exists("predictions.bs_bad")
    if "." in out and not out.startswith("lakeloom."):
        assert not ws.tables.exists(out)


def test_input_missing_model_columns_names_them(registry: Registry) -> None:
    ws = registry.ws
    ws.tables.write("raw.bs_partial", customers(10).drop(columns=["plan", "spend"]))
    with pytest.raises(SchemaMismatch, match="'spend', 'plan'") as info:
        ws.score_batch(
            "churn_model@production", "raw.bs_partial", output_table="predictions.bs_partial"
        )
    assert "\n" not in str(info.value)
    assert not ws.tables.exists("predictions.bs_partial")


def test_merge_without_keys_is_refused(registry: Registry) -> None:
    ws = registry.ws
    ws.tables.write("raw.bs_nokeys", customers(10)[COLUMNS])
    with pytest.raises(InvalidArgument, match="needs key columns"):
        ws.score_batch(
            "churn_model@production",
            "raw.bs_nokeys",
            output_table="predictions.bs_nk",
            mode="merge",
        )
    assert not ws.tables.exists("predictions.bs_nk")


# -- SQL ---------------------------------------------------------------------------------
def test_sql_predict(registry: Registry) -> None:
    ws = registry.ws
    frame = customers(25)
    ws.tables.write("raw.bs_sql", frame)
    result = ws.engine.to_arrow(
        ws.sql(
            "select customer_id, predict('churn_model@production', *) as p, "
            "predict('models:/churn_model/2', tenure, spend, plan, email_opt_in) as q "
            "from raw.bs_sql order by customer_id"
        )
    ).to_pandas()
    X = frame[COLUMNS]
    assert result.p.tolist() == registry.models["churn_model/1"].predict(X).tolist()
    assert result.q.tolist() == registry.models["churn_model/2"].predict(X).tolist()
    with pytest.raises(SchemaMismatch, match="'plan'"):
        ws.sql("select predict('churn_model@production', tenure, spend) from raw.bs_sql")
    with pytest.raises(ModelNotFound):
        ws.sql("select predict('churn_model@nope', *) from raw.bs_sql")


# -- Spark -------------------------------------------------------------------------------
@pytest.mark.spark
def test_spark_scores_like_local(registry: Registry, spark_ws: Workspace) -> None:
    frame = customers(200)
    registry.ws.tables.write("raw.bs_spark", frame)
    local = registry.ws.score_batch(
        "churn_model@production", "raw.bs_spark", output_table="predictions.bs_spark_local"
    )
    remote = spark_ws.score_batch(
        "churn_model@production", "raw.bs_spark", output_table="predictions.bs_spark"
    )
    assert remote.version == 0 and remote.rows == 200
    a = output(registry.ws, "predictions.bs_spark_local").drop(columns=["scored_at"])
    b = output(registry.ws, "predictions.bs_spark").drop(columns=["scored_at"])
    pd.testing.assert_frame_equal(a, b)
    assert local.columns == remote.columns
    merged = spark_ws.score_batch(
        "churn_model@production", "raw.bs_spark", output_table="predictions.bs_spark", mode="merge"
    )
    assert merged.version == 1
    pd.testing.assert_frame_equal(
        output(registry.ws, "predictions.bs_spark").drop(columns=["scored_at"]), a
    )


@pytest.mark.spark
def test_spark_sql_predict(registry: Registry, spark_ws: Workspace) -> None:
    frame = customers(20)
    registry.ws.tables.write("raw.bs_spark_sql", frame)
    got = (
        spark_ws.engine.to_arrow(
            spark_ws.sql(
                "select customer_id, predict('churn_model@production', *) as p "
                "from raw.bs_spark_sql"
            )
        )
        .to_pandas()
        .sort_values("customer_id")
    )
    assert got.p.tolist() == registry.models["churn_model/1"].predict(frame[COLUMNS]).tolist()


@pytest.mark.spark
def test_spark_bad_input_writes_nothing(registry: Registry, spark_ws: Workspace) -> None:
    registry.ws.tables.write("raw.bs_spark_bad", customers(10).drop(columns=["plan"]))
    with pytest.raises(SchemaMismatch, match="'plan'"):
        spark_ws.score_batch(
            "churn_model@production", "raw.bs_spark_bad", output_table="predictions.bs_sb"
        )
    assert not registry.ws.tables.exists("predictions.bs_sb")


# -- atomicity ---------------------------------------------------------------------------
_SCORER = textwrap.dedent(
    """
    import sys
    from lakeloom import Workspace

    ws = Workspace.open(sys.argv[1], create=False)
    ws.score_batch("models:/marker_model/1", "raw.big", output_table="predictions.big")
    print("finished", flush=True)
    """
)


def _log_marker_model(ws: Workspace, marker: Path) -> None:
    """A pyfunc model that appends a line to ``marker`` per batch, then sleeps a while."""
    import mlflow
    import mlflow.pyfunc

    def make() -> Any:
        class MarkerModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
            # No type hints: MLflow would read them as an input schema.
            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                import time as _time

                with open(context.model_config["marker"], "a") as fh:
                    fh.write(f"{len(model_input)}\n")
                _time.sleep(1.0)
                return model_input["x"].to_numpy() * 2.0

        return MarkerModel()

    with mlflow.start_run(), warnings.catch_warnings():
        # MLflow's hints about predict's type hints (this test model has none on purpose).
        warnings.simplefilter("ignore", UserWarning)
        mlflow.pyfunc.log_model(
            name="model",
            python_model=make(),
            model_config={"marker": str(marker)},
            registered_model_name="marker_model",
            pip_requirements=["mlflow"],
        )


def test_killed_mid_run_leaves_the_old_version(tmp_path: Path) -> None:
    import mlflow

    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    ws = Workspace.init(tmp_path / "ws")
    marker = tmp_path / "marker.txt"
    try:
        mlflow.set_experiment("atomicity")
        _log_marker_model(ws, marker)
        n = 600_000  # several batches of 131,072 rows
        ws.tables.write("raw.big", pa.table({"id": np.arange(n, dtype="int64"), "x": np.ones(n)}))
        old = pa.table({"id": pa.array([1, 2], pa.int64()), "prediction": [0.5, 0.5]})
        ws.tables.write("predictions.big", old)
        script = tmp_path / "score.py"
        script.write_text(_SCORER)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LAKELOOM_"))}
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "ws")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            lines = marker.read_text().split() if marker.exists() else []
            if len(lines) >= 2 or proc.poll() is not None:  # two batches predicted
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert len(marker.read_text().split()) < 5  # it was killed before the last batch
        assert ws.tables.version("predictions.big") == 0
        assert ws.engine.to_arrow(ws.tables.read("predictions.big")).equals(old)
    finally:
        ws.close()
        mlflow.set_tracking_uri(previous[0])  # the session registry's store again
        mlflow.set_registry_uri(previous[1])
        mlflow.set_experiment("deployment-tests")


def test_lightgbm_classifier_scores_like_its_own_predict(tmp_path: Path) -> None:
    """A LightGBM classifier on numeric columns is scored on an Arrow-built matrix."""
    import lightgbm as lgb
    import mlflow
    import mlflow.sklearn

    from lakeloom.models import required_trusted_types

    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    ws = Workspace.init(tmp_path / "ws")
    try:
        rng = np.random.default_rng(4)
        n = 3000
        frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)})
        frame["k"] = rng.integers(0, 5, n).astype("int64")
        y = np.where(frame.x0 + frame.k * 0.3 > 0.5, "yes", "no")
        model = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(frame, y)
        mlflow.set_experiment("lgb")
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name="lgb_cls",
                serialization_format="skops",
                skops_trusted_types=required_trusted_types(model),
                pip_requirements=["lightgbm"],
            )
        data = frame.copy()
        data.insert(0, "row", np.arange(n, dtype="int64"))
        data.loc[::7, "x1"] = np.nan  # missing values reach LightGBM as NaN
        ws.tables.write("raw.lgb", data)
        ws.score_batch("models:/lgb_cls/1", "raw.lgb", output_table="predictions.lgb")
        out = ws.tables.read("predictions.lgb").to_pandas().sort_values("row")
        X = data.drop(columns=["row"])
        assert out.prediction.tolist() == model.predict(X).tolist()
        np.testing.assert_allclose(
            out[["probability_no", "probability_yes"]].to_numpy(), model.predict_proba(X)
        )
    finally:
        ws.close()
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        mlflow.set_experiment("deployment-tests")
