"""The ``automl`` step in a pipeline after manual training, registering and the gate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from lakeloom import Workspace
from lakeloom.pipelines import load_pipeline, run_pipeline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:flaml")

PIPELINE = """
name = "churn_automl"

[[steps]]
name = "train"
kind = "train"
table = "ml.churn_train"
label = "churned"
experiment = "churn"
models = ["logistic_regression"]

[[steps]]
name = "register"
kind = "register"
model = "churn_model"
experiment = "churn"
metric = "roc_auc"

[[steps]]
name = "gate"
kind = "gate"
model = "churn_model"
holdout = "ml.churn_holdout"
alias = "production"
metric = "roc_auc"
threshold = 0.5

[[steps]]
name = "automl"
kind = "automl"
table = "ml.churn_train"
label = "churned"
experiment = "churn"
time_limit = "20s"
trials = 3
models = ["lgbm"]
exclude = ["customer_id", "birth_date"]
register = "churn_model"
alias = "production"
holdout = "ml.churn_holdout"
"""


def test_automl_compares_with_the_manual_model_and_promotes_only_through_the_gate(
    tmp_path: Path, churn: pd.DataFrame
) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE)
    with Workspace.init(tmp_path / "ws") as ws:
        ws.tables.write("ml.churn_train", churn.iloc[:1500])
        ws.tables.write("ml.churn_holdout", churn.iloc[1500:])
        result = run_pipeline(ws, load_pipeline(path))
        messages = {r.step: r.message or "" for r in result.records}
        summary = messages["automl"]
        assert "roc_auc" in summary and "best manual logistic_regression" in summary
        assert "registered churn_model v2" in summary

        # The gate decided: production moved to v2 only if the step says it was promoted.
        promoted = "production promoted" in summary
        assert promoted or "production kept (gate refused)" in summary
        assert ws.registry.current("churn_model", "production") == (2 if promoted else 1)
        events = ws.registry.history("churn_model", "production")
        assert [e.kind for e in events] == ["gate", "gate"]
        last = events[-1]
        assert (last.from_version, last.details["candidate"]) == (1, 2)
        assert last.to_version == (2 if promoted else 1)

        # The excluded columns were not learnt from, and the run says where the data came from.
        c = MlflowClient(ws.tracking.tracking_uri)
        version = c.get_model_version("churn_model", "2")
        run = c.get_run(version.run_id)
        assert run.data.tags["lakeloom.kind"] == "automl"
        assert run.data.params["columns"] == str(churn.shape[1] - 3)
        assert run.data.params["n_trials"] == "3"
