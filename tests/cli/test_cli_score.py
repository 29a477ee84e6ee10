"""``lakeloom score`` in-process, and the ``score`` pipeline step."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import Result

from lakeloom import Workspace
from lakeloom.pipelines import load_pipeline, run_pipeline

Invoke = Callable[..., Result]

COLUMNS = ["tenure", "spend"]


def _customers(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype="int64"),
            "tenure": rng.integers(1, 60, n).astype("int64"),
            "spend": rng.gamma(2.0, 30.0, n),
        }
    )


@pytest.fixture
def scored_ws(ws_path: Path) -> Path:
    """A workspace with raw.new_customers and churn_model@production (logistic regression)."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from lakeloom.models import required_trusted_types

    ws = Workspace.open(ws_path)
    try:
        frame = _customers(200)
        y = (frame.tenure < 20).astype(int)
        model = LogisticRegression().fit(frame[COLUMNS], y)
        mlflow.set_experiment("cli-score")
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name="churn_model",
                serialization_format="skops",
                skops_trusted_types=required_trusted_types(model),
                pip_requirements=["scikit-learn"],
            )
        ws.mlflow_client.set_registered_model_alias("churn_model", "production", "1")
        ws.tables.write("raw.new_customers", frame)
    finally:
        ws.close()
    return ws_path


def test_score_json(invoke: Invoke, scored_ws: Path) -> None:
    args = [
        "score",
        "--model",
        "models:/churn_model@production",
        "--input-table",
        "raw.new_customers",
        "--output-table",
        "predictions.customer_churn",
        "--workspace",
        scored_ws,
    ]
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["output_table"] == "predictions.customer_churn" and doc["version"] == 0
    assert doc["rows"] == 200 and doc["model_name"] == "churn_model" and doc["model_version"] == 1
    assert doc["columns"][:4] == ["customer_id", "prediction", "probability_0", "probability_1"]
    again = invoke(*args, "--mode", "merge", "--keys", "customer_id")
    assert again.exit_code == 0, again.output
    assert "predictions.customer_churn version 1 (merge)" in again.stdout
    ws = Workspace.open(scored_ws)
    try:
        assert ws.tables.read("predictions.customer_churn").num_rows == 200
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "churn_model@nope"], "has no alias 'nope'"),
        (["--model", "unknown_model@production"], "no registered model 'unknown_model'"),
        (["--input-table", "raw.nothing"], "'raw.nothing' does not exist"),
        (["--output-table", "lakeloom.scores"], "reserved"),
    ],
)
def test_score_bad_input_one_line(
    invoke: Invoke, scored_ws: Path, extra: list[str], message: str
) -> None:
    base = {
        "--model": "churn_model@production",
        "--input-table": "raw.new_customers",
        "--output-table": "predictions.bad",
    }
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        base[flag] = value
    args = [a for pair in base.items() for a in pair]
    result = invoke("score", *args, "--workspace", scored_ws)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    ws = Workspace.open(scored_ws)
    try:
        assert not ws.tables.exists("predictions.bad")
    finally:
        ws.close()


def test_score_pipeline_step(scored_ws: Path, tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(
        'name = "scoring"\n\n'
        "[[steps]]\n"
        'name = "score"\n'
        'kind = "score"\n'
        'model = "models:/churn_model@production"\n'
        'input_table = "raw.new_customers"\n'
        'output_table = "predictions.customer_churn"\n'
        'mode = "merge"\n'
        'keys = ["customer_id"]\n'
    )
    ws = Workspace.open(scored_ws)
    try:
        first = run_pipeline(ws, load_pipeline(path))
        second = run_pipeline(ws, load_pipeline(path))
        record = first.records[0]
        assert record.status == "succeeded"
        assert [i.to_dict() for i in record.inputs] == [
            {"table": "raw.new_customers", "version": 0}
        ]
        assert [o.to_dict() for o in record.outputs] == [
            {"table": "predictions.customer_churn", "version": 0}
        ]
        assert "200 rows scored by churn_model v1" in (record.message or "")
        assert second.records[0].outputs[0].version == 1
        assert ws.tables.read("predictions.customer_churn").num_rows == 200  # merged, not added
    finally:
        ws.close()


def test_score_step_is_checked_before_running(tmp_path: Path) -> None:
    from lakeloom.errors import PipelineError

    path = tmp_path / "pipeline.toml"
    path.write_text(
        'name = "bad"\n[[steps]]\nname = "s"\nkind = "score"\nmodel = "m@p"\n'
        'input_table = "raw.x"\noutput_table = "lakeloom.out"\n'
    )
    with pytest.raises(PipelineError, match="output_table"):
        load_pipeline(path)


def test_score_wrong_mode_is_a_usage_error(invoke: Invoke, ws_path: Path) -> None:
    result = invoke(
        "score", "--model", "m@p", "--input-table", "raw.a", "--output-table", "p.b",
        "--mode", "upsert", "--workspace", ws_path,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "'upsert' is not one of 'overwrite', 'append', 'merge'" in result.stderr


def test_sql_predict_from_the_command_line(invoke: Invoke, scored_ws: Path) -> None:
    query = (
        "select customer_id, predict('churn_model@production', *) as churn "
        "from raw.new_customers order by customer_id limit 5"
    )
    result = invoke("sql", query, "--json", "--workspace", scored_ws)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [c["name"] for c in doc["columns"]] == ["customer_id", "churn"]
    assert [r["customer_id"] for r in doc["rows"]] == [1, 2, 3, 4, 5]
    assert {r["churn"] for r in doc["rows"]} <= {0, 1}
    bad = invoke(
        "sql", "select predict(tenure, *) from raw.new_customers", "--workspace", scored_ws
    )
    assert bad.exit_code == 2 and "must be a string literal" in bad.stderr
