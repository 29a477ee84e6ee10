"""``lakeloom monitor``, ``lakeloom ab report`` and the ``monitor`` step, run in-process."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from monitoring_support import END, customers, log_traffic

from lakeloom import Workspace
from lakeloom.cli import cli
from lakeloom.pipelines import StepFailed, load_pipeline, run_pipeline

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _fresh_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each CLI call is a fresh process: forget the MLflow URI a previous test set."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def ws_path(tmp_path: Path) -> Path:
    """A workspace with a baseline, one drifted day of churn traffic, and ml.same."""
    path = tmp_path / "ws"
    ws = Workspace.init(path)
    try:
        ws.tables.write("ml.training", customers(4000, seed=1))
        ws.tables.write("ml.same", customers(4000, seed=2))
        log_traffic(ws, "churn", customers(2000, seed=3, shift=1.0), start=END - DAY, span=DAY)
    finally:
        ws.close()
    return path


def test_exit_codes(ws_path: Path, tmp_path: Path) -> None:
    base = ("monitor", "--baseline", "ml.training", "-w", ws_path)
    drift = invoke(*base, "--endpoint", "churn")
    assert drift.exit_code == 0, drift.output
    assert "spend" in drift.output and "DRIFT FOUND" in drift.output
    failing = invoke(*base, "--endpoint", "churn", "--fail-on-drift")
    assert failing.exit_code == 1, failing.output
    same = invoke(*base, "--table", "ml.same", "--fail-on-drift")
    assert same.exit_code == 0, same.output
    assert "no drift" in same.output
    error = invoke(*base, "--endpoint", "nope", "--fail-on-drift")
    assert error.exit_code == 2
    assert "error: table 'lakeloom.inference_nope' does not exist" in error.output
    both = invoke(*base, "--endpoint", "churn", "--table", "ml.same")
    assert both.exit_code == 2 and "exactly one" in both.output


def test_json_report_and_sql_over_the_results(ws_path: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = invoke(
        "monitor",
        "--endpoint",
        "churn",
        "--baseline",
        "ml.training",
        "--report",
        report,
        "--json",
        "--fail-on-drift",
        "-w",
        ws_path,
    )
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    assert doc["drift_found"] is True and doc["exit_code"] == 1
    assert doc["most_drifted"][0]["column"] == "spend"
    assert doc["report"] == str(report) and report.read_text().startswith("<!doctype html>")
    query = invoke(
        "sql",
        "select feature, method, drifted from lakeloom.monitor_churn_drift "
        "where is_primary and kind = 'feature' order by 1",
        "--json",
        "-w",
        ws_path,
    )
    assert query.exit_code == 0, query.output
    rows = json.loads(query.output)["rows"]
    assert {"feature": "spend", "method": "wasserstein", "drifted": True} in rows


def test_ab_report_command(ws_path: Path) -> None:
    ws = Workspace.open(ws_path)
    try:
        frame = customers(1200, seed=8)
        rng = np.random.default_rng(5)
        truth = rng.random(len(frame)) < 0.3
        routes = ["champion" if i % 4 else "challenger" for i in range(len(frame))]
        # The challenger is right 85% of the time, the champion 70%.
        right = [rng.random() < (0.85 if r == "challenger" else 0.70) for r in routes]
        preds = [float(t == ok) for t, ok in zip(truth, right, strict=True)]
        log_traffic(
            ws,
            "ab",
            frame,
            start=END - DAY,
            span=DAY,
            predictions=preds,
            routes=routes,
            versions={"champion": 1, "challenger": 2},
        )
        ws.tables.write("raw.labels", frame[["customer_id"]].assign(churned=truth.astype("int64")))
    finally:
        ws.close()
    result = invoke(
        "ab",
        "report",
        "ab",
        "--labels",
        "raw.labels",
        "--join-key",
        "customer_id",
        "--json",
        "-w",
        ws_path,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["recommendation"] == "promote_challenger"
    assert doc["challenger"]["traffic"]["share"] == pytest.approx(0.25)
    assert doc["challenger"]["value"] > doc["champion"]["value"]
    text = invoke(
        "ab",
        "report",
        "ab",
        "--labels",
        "raw.labels",
        "--join-key",
        "customer_id",
        "--window",
        "1h",
        "-w",
        ws_path,
    )
    assert text.exit_code == 0 and "collect_more" in text.output
    bad = invoke(
        "ab", "report", "ab", "--labels", "raw.labels", "--join-key", "nope", "-w", ws_path
    )
    assert bad.exit_code == 2 and "nope" in bad.output


STEP = """
name = "watch"

[[steps]]
name = "monitor"
kind = "monitor"
endpoint = "churn"
baseline = "ml.training"
report = "reports/churn.html"
{extra}
"""


def test_the_monitor_step_prints_the_most_drifted_and_the_report(
    ws_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(STEP.format(extra=""))
    ws = Workspace.open(ws_path)
    try:
        run = run_pipeline(ws, load_pipeline(path))
        (record,) = run.records
        assert record.status == "succeeded"
        assert {o.table for o in record.outputs} == {
            "lakeloom.monitor_churn_profile",
            "lakeloom.monitor_churn_drift",
        }
        printed = capsys.readouterr().err
        report = ws_path / "reports" / "churn.html"
        assert f"report: {report}" in printed and report.is_file()
        lines = printed.splitlines()
        first = lines[lines.index(next(ln for ln in lines if ln.startswith("feature"))) + 1]
        assert first.split()[0] == "spend" and first.split()[-1] == "yes"
        path.write_text(STEP.format(extra="fail_on_drift = true"))
        with pytest.raises(StepFailed, match="drift in spend"):
            run_pipeline(ws, load_pipeline(path))
    finally:
        ws.close()
