"""The demo: the churn pipeline end to end, its summary, and the training set's correctness."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from lakeloom import Workspace
from lakeloom.cli import cli
from lakeloom.demo import pipeline_path, run_demo


@pytest.fixture(autouse=True)
def _fresh_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A demo runs in a fresh process: forget the MLflow URI another test set."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


def test_the_pipeline_file_is_found() -> None:
    path = pipeline_path()
    assert path.is_file() and path.parts[-3:] == ("examples", "churn", "pipeline.toml")


def test_run_demo_sums_up_from_the_run_log(workspace: Workspace) -> None:
    seen: list[str] = []
    result = run_demo(workspace, customers=300, seed=7, on_event=lambda e, r: seen.append(e))
    statuses = {s.step: s.status for s in result.steps}
    assert statuses.pop("spark_train") == "skipped"  # runs only on the spark engine
    assert set(statuses.values()) == {"succeeded"}, statuses
    assert seen.count("start") >= len(statuses)
    rows = {t.table: t.rows for t in result.tables}
    assert rows["raw.customers"] == 300
    assert rows["ml.churn_training"] + rows["ml.churn_holdout"] == 300
    assert rows["features.customer_demographics"] == 330  # labelled + new customers
    assert rows["ml.new_customer_features"] == 30
    assert result.tracking_uri == workspace.tracking.tracking_uri
    assert any(c.endswith(f"ui --workspace {workspace.root}") for c in result.next_commands)
    assert json.loads(json.dumps(result.to_dict()))["run_id"] == result.run_id


def test_the_demo_trains_compares_registers_and_gates(workspace: Workspace) -> None:
    summaries: dict[str, str] = {}

    def keep(event: str, record: Any) -> None:
        if event == "end":
            summaries[record.step] = record.message or ""

    result = run_demo(workspace, customers=400, seed=5, on_event=keep)
    for family in ("logistic_regression", "random_forest", "xgboost"):
        assert family in summaries["train"]  # the comparison, best first
    parent = re.search(r"parent run (\w+)", summaries["train"])
    assert parent is not None
    compared = workspace.runs.compare("churn", "roc_auc", parent_run=parent.group(1))
    assert len(compared) == 3
    assert sorted(compared["model"].tolist()) == [
        "logistic_regression",
        "random_forest",
        "xgboost",
    ]
    best = workspace.runs.best("churn", "roc_auc", parent_run=parent.group(1))
    # The best manual run is registered first and promoted by the gate; AutoML's winner is
    # the next version, promoted only if it beats it on the holdout.
    assert workspace.registry.version("churn_model", 1).run_id == best.run_id
    assert "promoted" in summaries["gate"]
    automl_won = "production kept" not in summaries["automl"]
    expected = [("production", 1)] + ([("production", 2)] if automl_won else [])
    production = workspace.registry.resolve("models:/churn_model@production")
    assert production.version == expected[-1][1]
    moves = workspace.registry.history("churn_model")
    scored = workspace.tables.read("predictions.customer_churn")
    assert scored.num_rows == workspace.tables.read("ml.new_customer_features").num_rows
    assert set(scored["model_name"].to_pylist()) == {"churn_model"}
    # Served with drifted traffic, monitored, reported.
    assert workspace.tables.exists("lakeloom.inference_churn")
    assert "drift:" in summaries["serve"]
    assert [Path(r).name for r in result.reports] == ["monitor_churn.html"]
    assert "report" in summaries["monitor"]
    summary = {m.name: m for m in result.models}["churn_model"]
    assert summary.aliases["production"] == summary.version == production.version
    if not automl_won:
        assert summary.metrics["roc_auc"] == pytest.approx(best.metrics["roc_auc"], abs=1e-4)
    assert [(m.alias, m.to_version) for m in moves if m.moved] == expected


def test_the_training_set_is_point_in_time_correct(workspace: Workspace) -> None:
    run_demo(workspace, customers=200, seed=11)
    training = workspace.tables.read("ml.churn_training")
    orders = workspace.tables.read("raw.orders")
    labels = workspace.tables.read("raw.churn_labels")
    joined = orders.join(labels, "customer_id")
    before = joined.filter(pc.less_equal(joined["order_date"], joined["label_date"]))
    expected = before.group_by("customer_id").aggregate([("order_id", "count")])
    counts = dict(
        zip(
            expected["customer_id"].to_pylist(),
            expected["order_id_count"].to_pylist(),
            strict=True,
        )
    )
    got = dict(
        zip(training["customer_id"].to_pylist(), training["orders_total"].to_pylist(), strict=True)
    )
    assert got == {c: counts.get(c, 0) for c in got}
    # Some customers did order after their label date: the filter matters.
    assert joined.num_rows > before.num_rows
    assert set(training.column_names) >= {"age_years", "recency_days", "plan", "churned"}
    assert training.schema.field("churned").type == pa.int32()


def test_demo_command(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--workspace", str(root), "--customers", "200"])
    assert result.exit_code == 0, result.output
    assert (root / "lakeloom.toml").is_file()
    for text in ("ml.churn_training", "MLflow store", f"lakeloom ui --workspace {root}"):
        assert text in result.stdout
    assert "✓ training_set" in result.stderr
    result = CliRunner().invoke(
        cli, ["--json", "demo", "--workspace", str(root), "--customers", "100", "--seed", "3"]
    )
    doc = json.loads(result.stdout)
    assert {t["table"]: t["version"] for t in doc["tables"]}["ml.churn_training"] == 1
