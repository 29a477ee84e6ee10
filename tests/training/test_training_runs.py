"""Training with tracking: parent and child runs and everything each child logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model
from training_support import open_ml_workspace

from lakeloom import Workspace
from lakeloom.models.metrics import CLASSIFICATION_METRICS
from lakeloom.tracking.store import activate
from lakeloom.training import TrainingResult

MODELS = ["logistic_regression", "random_forest", "xgboost", "lightgbm"]


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, mlflow_db_template: Path, churn_frame: pd.DataFrame
) -> Iterator[tuple[Workspace, TrainingResult]]:
    ws = open_ml_workspace(tmp_path_factory.mktemp("train") / "ws", mlflow_db_template)
    ws.tables.write("raw.churn", churn_frame)
    result = ws.train(
        "raw.churn",
        label="churned",
        experiment="churn",
        models=MODELS,
        params={"n_estimators": 20},
        seed=1,
    )
    try:
        yield ws, result
    finally:
        ws.close()


def test_one_parent_and_one_child_per_model(trained: tuple[Workspace, TrainingResult]) -> None:
    ws, result = trained
    c = ws.mlflow_client
    parent = c.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["lakeloom.best_run_id"] == result.best().run_id
    assert result.task == "binary"
    assert result.metric == "roc_auc"
    children = c.search_runs(
        [result.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    assert sorted(r.info.run_name for r in children) == sorted(MODELS)
    assert {r.info.status for r in children} == {"FINISHED"}
    # The churn signal is learnable; every model beats chance clearly.
    assert all(run.metrics["roc_auc"] > 0.6 for run in result.runs)


def test_child_run_logs_params_metrics_plots_lineage(
    trained: tuple[Workspace, TrainingResult],
) -> None:
    ws, result = trained
    c = ws.mlflow_client
    forest = next(r for r in result.runs if r.model == "random_forest")
    run = c.get_run(forest.run_id)
    params = run.data.params
    # Every hyperparameter, including the ones left at their defaults.
    assert params["n_estimators"] == "20"
    assert params["max_depth"] == "None"
    assert params["random_state"] == "1"
    assert params["data.table"] == "raw.churn"
    assert params["data.version"] == str(ws.tables.version("raw.churn"))
    assert params["data.rows"] == "1000"
    assert params["split.test_rows"] == "200"
    assert set(CLASSIFICATION_METRICS) <= set(run.data.metrics)
    assert run.data.metrics["training_time_seconds"] > 0
    plots = {a.path for a in c.list_artifacts(forest.run_id, "plots")}
    assert {
        "plots/roc_curve.png",
        "plots/pr_curve.png",
        "plots/confusion_matrix.png",
        "plots/feature_importance.png",
        "plots/feature_importance.json",
    } <= plots
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "raw.churn"
    assert dataset_input.dataset.source_type == "delta_table"
    source = json.loads(dataset_input.dataset.source)
    assert source["delta_table_version"] == ws.tables.version("raw.churn")
    assert json.loads(dataset_input.dataset.profile)["num_rows"] == 1000
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert run.data.tags["lakeloom.table_version"] == str(ws.tables.version("raw.churn"))


def test_logged_models_are_ordinary_mlflow_models(
    trained: tuple[Workspace, TrainingResult], churn_frame: pd.DataFrame, tmp_path: Path
) -> None:
    ws, result = trained
    activate(ws.tracking)  # plain MLflow calls go to the last workspace opened
    raw = churn_frame.drop(columns=["churned"]).head(20)  # every column of the table
    for run in result.runs:
        model = mlflow.pyfunc.load_model(run.model_uri)
        predictions = np.asarray(model.predict(raw))
        assert predictions.shape == (20,)
        assert set(predictions.tolist()) <= {0, 1}
    local = mlflow.artifacts.download_artifacts(result.best().model_uri, dst_path=str(tmp_path))
    meta = Model.load(local)
    inputs = meta.signature.inputs.input_names()
    assert "customer_id" not in inputs  # an identifier, not a feature
    assert {"plan", "income", "tenure_months", "email_opt_in"} <= set(inputs)
    assert meta.saved_input_example_info is not None
    requirements = Path(local, "requirements.txt").read_text()
    assert "lakeloom==" in requirements
    assert "skops==" in requirements


def test_comparison_and_best(trained: tuple[Workspace, TrainingResult]) -> None:
    ws, result = trained
    table = ws.runs.compare("churn", "roc_auc")
    assert list(table["model"]) == [r.model for r in result.ranked("roc_auc")]
    assert table["roc_auc"].is_monotonic_decreasing
    assert list(table.columns[:5]) == ["rank", "run_id", "run_name", "model", "roc_auc"]
    by_loss = ws.runs.compare("churn", "log_loss")
    assert by_loss["log_loss"].is_monotonic_increasing  # lower is better
    assert ws.runs.best("churn", "roc_auc").run_id == result.best("roc_auc").run_id
    assert ws.runs.compare("churn").attrs["metric"] == "roc_auc"  # the training's metric


@pytest.mark.slow
def test_served_with_mlflow_models_serve(
    trained: tuple[Workspace, TrainingResult], churn_frame: pd.DataFrame
) -> None:
    ws, result = trained
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": ws.tracking.tracking_uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", result.best().model_uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow models serve exited: {server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mlflow models serve did not answer within 90 s")
                time.sleep(0.5)
        rows = churn_frame.drop(columns=["churned", "birth_date", "signup_date"]).head(3)
        records = json.loads(rows.to_json(orient="split", index=False))
        records["data"][0][records["columns"].index("plan")] = "enterprise"  # unseen level
        records["data"][1][records["columns"].index("income")] = None  # missing value
        body = json.dumps({"dataframe_split": records}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert len(answer["predictions"]) == 3
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr:
            server.stderr.close()
