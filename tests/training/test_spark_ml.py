"""Spark ML training: tuned pipelines, tracked like the scikit-learn path, loadable, registrable.

One Spark session serves the whole module; data is small and grids tiny (cv=2) so that the
file stays well under a minute and a half.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from training_support import open_ml_workspace

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.models.metric_names import CLASSIFICATION_METRICS, REGRESSION_METRICS
from lakeloom.pipelines import load_pipeline, run_pipeline
from lakeloom.settings import SparkSettings
from lakeloom.training.spark_ml import load_spark_model, score_spark, train_spark
from lakeloom.training.train import TrainingContext

SPARK = SparkSettings(master="local[2]", conf={"spark.sql.shuffle.partitions": "2"})
SPARK_TOML = """\
engine = "spark"
[spark]
master = "local[2]"
[spark.conf]
"spark.sql.shuffle.partitions" = "2"
"""


@pytest.fixture(scope="module")
def spark_engine() -> Iterator[Any]:
    """Keeps one Spark session alive for the module (workspaces share it)."""
    from lakeloom.engines.spark import SparkEngine

    engine = SparkEngine(SPARK)
    engine.spark.range(1).count()
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def spark_ws(tmp_path: Path, mlflow_db_template: Path, spark_engine: Any) -> Iterator[Workspace]:
    """A workspace on the spark engine with an embedded MLflow store."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "lakeloom.toml").write_text(SPARK_TOML)
    ws = open_ml_workspace(root, mlflow_db_template)
    assert ws.settings.engine == "spark"
    try:
        yield ws
    finally:
        ws.close()


def _ctx(ws: Workspace) -> TrainingContext:
    return TrainingContext(ws.tracking, ws.tables, ws.engine)


@pytest.fixture
def churn_table(spark_ws: Workspace, churn_frame: pd.DataFrame) -> str:
    spark_ws.tables.write("ml.churn", churn_frame.head(500))
    return "ml.churn"


pytestmark = pytest.mark.spark


def test_classification_is_tracked_saved_loadable_and_comparable(
    spark_ws: Workspace, churn_table: str, churn_frame: pd.DataFrame
) -> None:
    import mlflow.pyfunc
    import mlflow.spark

    ws = spark_ws
    result = train_spark(
        _ctx(ws),
        churn_table,
        label="churned",
        experiment="churn",
        models="logistic_regression,gbt",
        cv=2,
        params={
            "logistic_regression": {"regParam": [0.0, 0.1], "elasticNetParam": 0.0},
            "gbt": {"maxIter": 5, "maxDepth": 2},
        },
        save_to=ws.storage.uri("Files", "models"),
    )
    assert result.task == "binary" and result.metric == "roc_auc"
    assert [r.model for r in result.runs] == ["logistic_regression", "gbt"]
    assert set(result.features.dropped) >= {"customer_id", "birth_date", "signup_date"}
    for run in result.runs:
        # The scikit-learn path's names, so runs of both engines compare.
        named = set(run.metrics) - {"training_time_seconds", "cv_roc_auc"}
        assert named <= set(CLASSIFICATION_METRICS)
        assert named >= {"accuracy", "f1", "precision", "recall", "roc_auc", "pr_auc", "log_loss"}
        assert 0.0 <= run.metrics["roc_auc"] <= 1.0
        assert 0.0 <= run.metrics["cv_roc_auc"] <= 1.0
        summary = ws.runs.get(run.run_id)
        assert summary.parent_run_id == result.parent_run_id
        assert summary.tags["lakeloom.engine"] == "spark"
        assert summary.params["data.table"] == "ml.churn"
        saved = Path(summary.tags["lakeloom.spark_model_path"])
        assert saved.is_relative_to(Path(ws.root) / "Files" / "models")
        assert (saved / "stages").is_dir()
    lr = ws.runs.get(result.runs[0].run_id)
    assert lr.params["best.regParam"] in ("0.0", "0.1")
    assert lr.params["grid.regParam"] == "[0.0, 0.1]" and lr.params["grid.points"] == "2"
    assert lr.params["elasticNetParam"] == "0.0"

    # The logged model loads back with mlflow.spark and as pyfunc, and scores.
    best = result.best()
    model = mlflow.spark.load_model(best.model_uri)
    rows = churn_frame.head(20).drop(columns=["churned"])
    scored = model.transform(ws.engine.from_input(rows))
    assert scored.select("prediction").count() == 20
    predictions = mlflow.pyfunc.load_model(best.model_uri).predict(
        rows.drop(columns=["birth_date", "signup_date", "customer_id"])
    )
    assert len(predictions) == 20 and set(map(float, predictions)) <= {0.0, 1.0}

    # A scikit-learn training in the same experiment ranks together with the Spark runs.
    ws.train(churn_table, label="churned", experiment="churn", models="logistic_regression")
    compared = ws.runs.compare("churn", "roc_auc")
    engines = {ws.runs.get(r).tags.get("lakeloom.engine", "local") for r in compared["run_id"]}
    assert engines == {"spark", "local"} and len(compared) == 3

    # Registered, then scored on Spark from the registry.
    version = ws.registry.register(best.run_id, name="churn_spark")
    loaded = load_spark_model(f"models:/churn_spark/{version.version}", ws.engine)
    out = score_spark(loaded, ws.tables.read(churn_table), keep=["customer_id"])
    assert out.columns == ["customer_id", "prediction", "predicted_label", "probability"]
    first = out.orderBy("customer_id").first()
    assert first is not None and first["predicted_label"] in ("0", "1")
    assert len(first["probability"]) == 2


def test_regression_with_a_train_validation_split(spark_ws: Workspace) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    spark_ws.tables.write("ml.diabetes", frame)
    result = train_spark(
        _ctx(spark_ws),
        "ml.diabetes",
        label="target",
        experiment="diabetes",
        models=["random_forest"],
        cv=0,
        params={"numTrees": 5, "maxDepth": 3},
    )
    run = result.best()
    assert result.task == "regression" and result.metric == "rmse"
    assert set(REGRESSION_METRICS) <= set(run.metrics)
    assert run.metrics["rmse"] > 0 and run.metrics["r2"] < 1
    params = spark_workspace_params(spark_ws, run.run_id)
    assert params["tuning"] == "TrainValidationSplit(0.75)"
    assert params["numTrees"] == "5"


def spark_workspace_params(ws: Workspace, run_id: str) -> dict[str, str]:
    return ws.runs.get(run_id).params


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"models": "xgboost"}, InvalidArgument, "unknown Spark ML model 'xgboost'"),
        ({"models": "logistic_regression", "params": {"numTres": 3}}, InvalidArgument, "numTres"),
        ({"label": "nope"}, SchemaMismatch, "label column 'nope'"),
        ({"models": "linear_regression"}, InvalidArgument, "does not do classification"),
        ({"cv": -1}, InvalidArgument, "cv must be"),
        ({"metric": "rmse"}, InvalidArgument, "metric 'rmse' is not available"),
    ],
)
def test_bad_input_writes_nothing(
    spark_ws: Workspace,
    churn_table: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    args: dict[str, Any] = {"label": "churned", "experiment": "bad", **kwargs}
    with pytest.raises(error, match=message):
        train_spark(_ctx(spark_ws), churn_table, **args)
    assert "bad" not in spark_ws.runs.experiments()


def test_the_local_engine_is_refused(ml_workspace: Workspace, churn_frame: pd.DataFrame) -> None:
    ml_workspace.tables.write("ml.churn", churn_frame.head(50))
    with pytest.raises(InvalidArgument, match="runs on the spark engine"):
        train_spark(_ctx(ml_workspace), "ml.churn", label="churned", experiment="x")
    assert "x" not in ml_workspace.runs.experiments()


PIPELINE = """\
name = "spark_ml"

[[steps]]
name = "spark_train"
kind = "spark_train"
engines = ["spark"]
table = "ml.churn"
label = "churned"
experiment = "pipeline"
models = ["random_forest"]
cv = 0
grid = { numTrees = 5, maxDepth = 3 }

[[steps]]
name = "register"
kind = "register"
engines = ["spark"]
model = "churn_rf"
experiment = "pipeline"
"""


def test_spark_train_step_runs_on_spark_only(
    spark_ws: Workspace,
    churn_table: str,
    churn_frame: pd.DataFrame,
    mlflow_db_template: Path,
    tmp_path: Path,
) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE)
    spec = load_pipeline(path)
    assert spec.steps[0].engines == ("spark",)

    ran = run_pipeline(spark_ws, spec)
    assert [r.status for r in ran.records] == ["succeeded", "succeeded"]
    assert ran.records[0].message is not None and "roc_auc: random_forest" in ran.records[0].message
    assert spark_ws.registry.resolve("models:/churn_rf/latest").version == 1

    with open_ml_workspace(tmp_path / "local", mlflow_db_template) as local:
        local.tables.write("ml.churn", churn_frame.head(50))
        skipped = run_pipeline(local, spec)
        assert [r.status for r in skipped.records] == ["skipped", "skipped"]
        assert "runs on the spark engine; this run uses local" in (skipped.records[0].message or "")
        assert "pipeline" not in local.runs.experiments()


def test_cli_train_dispatches_to_spark_ml(
    spark_ws: Workspace, churn_table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from lakeloom.cli.main import run_cli

    args = ["train", "--table", churn_table, "--label", "churned", "--experiment", "cli"]
    args += ["--models", "random_forest", "-p", "numTrees=5", "-p", "maxDepth=[2,3]"]
    code = run_cli([*args, "--engine", "spark", "--cv", "0", "-w", spark_ws.root, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    (run,) = result["runs"]
    assert run["model"] == "random_forest" and "roc_auc" in run["metrics"]
    params = spark_ws.runs.get(result["best"]["run_id"]).params
    assert params["grid.maxDepth"] == "[2, 3]" and params["numTrees"] == "5"

    code = run_cli([*args, "--engine", "local", "--cv", "3", "-w", spark_ws.root])
    assert code == 2
    assert "--cv is for the spark engine" in capsys.readouterr().err
