"""Training inputs: regression, other label types, frames, bad input and crashing runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.datasets import load_diabetes

from lakeloom import Workspace
from lakeloom.errors import (
    InvalidArgument,
    LakeloomError,
    SchemaMismatch,
    TableNotFound,
    TrainingError,
)
from lakeloom.models.data import Lineage


def _experiments(ws: Workspace) -> list[str]:
    return [e.name for e in ws.mlflow_client.search_experiments()]


def test_regression_from_the_label(ml_workspace: Workspace) -> None:
    data = load_diabetes(as_frame=True).frame
    ml_workspace.tables.write("raw.diabetes", data)
    result = ml_workspace.train(
        "raw.diabetes",
        label="target",
        experiment="diabetes",
        models="linear_regression,random_forest",
        params={"random_forest": {"n_estimators": 10}},
    )
    assert result.task == "regression"
    assert result.metric == "rmse"
    c = ml_workspace.mlflow_client
    for run in result.runs:
        assert {"rmse", "mae", "r2", "mape"} <= set(run.metrics)
        plots = {a.path for a in c.list_artifacts(run.run_id, "plots")}
        assert {"plots/residuals.png", "plots/predicted_vs_actual.png"} <= plots
    ranked = result.ranked()
    assert ranked[0].metrics["rmse"] <= ranked[1].metrics["rmse"]
    forced = ml_workspace.train(
        data.assign(grade=(data["target"] > 140).astype(int)),
        label="grade",
        experiment="diabetes",
        models=["linear_regression"],
        task="regression",
        exclude=["target"],
    )
    assert forced.task == "regression"
    assert forced.lineage == Lineage(name="dataframe", version=None, rows=len(data))


def test_boolean_and_string_labels_with_xgboost(
    ml_workspace: Workspace, churn_frame: pd.DataFrame
) -> None:
    import mlflow.pyfunc

    frame = pl.from_pandas(churn_frame.assign(churned=churn_frame["churned"] == 1))
    result = ml_workspace.train(
        frame,
        label="churned",
        experiment="labels",
        models=["xgboost"],
        params={"n_estimators": 10},
    )
    assert result.task == "binary"
    predictions = mlflow.pyfunc.load_model(result.best().model_uri).predict(
        churn_frame.drop(columns=["churned"]).head(5)
    )
    assert np.asarray(predictions).dtype == bool
    plans = ml_workspace.train(
        churn_frame,
        label="plan",
        experiment="labels",
        models=["xgboost"],
        params={"n_estimators": 10},
    )
    assert plans.task == "multiclass"
    assert plans.metric == "f1_weighted"


def test_bad_input_is_one_line_and_writes_nothing(
    ml_workspace: Workspace, churn_frame: pd.DataFrame
) -> None:
    ws = ml_workspace
    ws.tables.write("raw.churn", churn_frame)
    ws.tables.write("raw.flat", churn_frame.assign(churned=0))
    ws.tables.write("raw.empty", pa.Table.from_pandas(churn_frame, preserve_index=False)[:0])
    before = _experiments(ws)
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        ({"data": "raw.nope"}, TableNotFound, "raw.nope"),
        ({"label": "churn"}, SchemaMismatch, "label column 'churn' is not in table raw.churn"),
        ({"data": "raw.flat"}, InvalidArgument, "is constant"),
        ({"data": "raw.empty"}, InvalidArgument, "has no rows"),
        ({"models": "logistic_regression,forest"}, InvalidArgument, "unknown model 'forest'"),
        ({"models": "gbt"}, InvalidArgument, "spark engine"),
        ({"params": {"n_estimatorz": 5}}, InvalidArgument, "n_estimatorz"),
        ({"metric": "auc"}, InvalidArgument, "metric 'auc' is not available"),
        ({"test_size": 1.5}, InvalidArgument, "test_size"),
        ({"models": "linear_regression"}, InvalidArgument, "use 'logistic_regression'"),
    ]
    for overrides, error, text in cases:
        kwargs: dict[str, object] = {
            "data": "raw.churn",
            "label": "churned",
            "experiment": "never",
            "models": "logistic_regression,random_forest",
            **overrides,
        }
        data = kwargs.pop("data")
        with pytest.raises(error) as info:
            ws.train(data, **kwargs)  # type: ignore[arg-type]
        message = str(info.value)
        assert isinstance(info.value, LakeloomError)
        assert text in message, message
        assert "\n" not in message
    assert _experiments(ws) == before


def test_a_crashing_run_is_marked_failed(
    ml_workspace: Workspace, churn_frame: pd.DataFrame
) -> None:
    ws = ml_workspace
    with pytest.raises(TrainingError, match="training random_forest failed") as info:
        ws.train(
            churn_frame,
            label="churned",
            experiment="crash",
            models="logistic_regression,random_forest",
            params={"random_forest": {"max_depth": -3}},  # only fit() validates it
        )
    assert "\n" not in str(info.value)
    c = ws.mlflow_client
    experiment = c.get_experiment_by_name("crash")
    assert experiment is not None
    runs = {r.info.run_name: r for r in c.search_runs([experiment.experiment_id])}
    assert runs["logistic_regression"].info.status == "FINISHED"
    assert runs["random_forest"].info.status == "FAILED"
    assert "max_depth" in runs["random_forest"].data.tags["lakeloom.error"]
    assert runs["train churned"].info.status == "FAILED"
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]
