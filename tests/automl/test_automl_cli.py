"""``lakeloom automl run`` and the pipeline step ``automl``: leaderboard and manual comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lakeloom import Workspace
from lakeloom.cli import cli
from lakeloom.pipelines import load_pipeline, run_pipeline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:flaml")


@pytest.fixture
def churn_ws(tmp_path: Path, churn: pd.DataFrame) -> Path:
    root = tmp_path / "ws"
    with Workspace.init(root) as ws:
        ws.tables.write("ml.churn", churn.drop(columns=["birth_date"]))
        ws.train("ml.churn", label="churned", experiment="churn", models=["logistic_regression"])
    return root


def test_the_cli_prints_the_leaderboard_and_compares_with_the_manual_run(
    churn_ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(
        cli,
        [
            "automl",
            "run",
            "--workspace",
            str(churn_ws),
            "--table",
            "ml.churn",
            "--label",
            "churned",
            "--time-limit",
            "10m",
            "--trials",
            "3",
            "--models",
            "random_forest",  # lakeloom's family name for FLAML's rf
            "--experiment",
            "churn",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["task"] == "binary" and doc["metric"] == "roc_auc"
    assert doc["n_trials"] == 3 and len(doc["leaderboard"]) == 3
    assert doc["manual"]["model"] == "logistic_regression"
    assert isinstance(doc["beats_manual"], bool)

    text = CliRunner().invoke(
        cli,
        [
            "automl",
            "run",
            "--workspace",
            str(churn_ws),
            "--table",
            "ml.churn",
            "--label",
            "churned",
            "--trials",
            "2",
            "--models",
            "extra_tree",
            "--experiment",
            "churn",
        ],
    )
    assert text.exit_code == 0, text.output
    assert "Leaderboard" in text.output and "best manual run" in text.output


def test_the_cli_reports_bad_input_in_one_line(churn_ws: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "automl",
            "run",
            "--workspace",
            str(churn_ws),
            "--table",
            "ml.churn",
            "--label",
            "nope",
            "--trials",
            "2",
        ],
    )
    assert result.exit_code == 2
    assert "nope" in result.output and "Traceback" not in result.output


def test_the_pipeline_step(churn_ws: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "auto"\n\n[[steps]]\nname = "search"\nkind = "automl"\n'
        'table = "ml.churn"\nlabel = "churned"\ntime_limit = "10m"\ntrials = 2\n'
        'models = ["rf"]\nexperiment = "churn"\n'
    )
    with Workspace.open(churn_ws) as ws:
        result = run_pipeline(ws, load_pipeline(path))
    summary = result.records[0].message or ""
    assert "roc_auc" in summary and "best manual logistic_regression" in summary
