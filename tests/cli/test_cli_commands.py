"""The CLI in-process: every command, JSON output, exit codes and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from lakeloom.cli import ui as ui_module
from lakeloom.cli.main import run_cli

Invoke = Callable[..., Result]


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_help_everywhere(invoke: Invoke) -> None:
    for args in (["--help"], ["tables", "--help"], ["tables", "show", "--help"], ["run", "-h"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage:" in result.stdout
        assert "--workspace" in result.stdout and "--json" in result.stdout


def test_init_creates_a_workspace(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("init", tmp_path / "new", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["workspace"] == str(tmp_path / "new")
    assert doc["tracking_uri"].startswith("sqlite:///")
    assert (tmp_path / "new" / "lakeloom.toml").is_file()
    result = invoke("--workspace", tmp_path / "other", "init")  # PATH from --workspace
    assert result.exit_code == 0 and (tmp_path / "other" / "Tables").is_dir()


def test_no_workspace_is_an_error_not_a_new_folder(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("tables", "list", "--workspace", tmp_path / "absent")
    assert result.exit_code == 2
    assert "no lakeloom workspace" in _one_error_line(result.stderr)
    assert not (tmp_path / "absent").exists()


def test_data_churn_tables_and_sql(invoke: Invoke, ws_path: Path) -> None:
    result = invoke("data", "churn", "--customers", "30", "--seed", "1", "-w", ws_path, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {t["table"]: t["rows"] for t in doc["tables"]}["raw.customers"] == 30

    result = invoke("--workspace", ws_path, "--json", "tables", "list", "--schema", "raw")
    names = [t["name"] for t in json.loads(result.stdout)]
    assert names == ["raw.churn_labels", "raw.customers", "raw.new_customers", "raw.orders"]
    result = invoke("tables", "-w", ws_path)  # alone: list
    assert result.exit_code == 0 and "raw.orders" in result.stdout

    result = invoke("tables", "describe", "raw.customers", "-w", ws_path, "--json")
    info = json.loads(result.stdout)
    assert info["rows"] == 30 and info["schema"][0] == {"name": "customer_id", "type": "int64"}
    assert "customer_id" in invoke("tables", "describe", "raw.customers", "-w", ws_path).stdout

    result = invoke(
        "sql",
        "select plan, count(*) as n from raw.customers group by plan order by plan",
        "-w",
        ws_path,
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [c["name"] for c in doc["columns"]] == ["plan", "n"]
    assert sum(r["n"] for r in doc["rows"]) == 30 and doc["truncated"] is False

    result = invoke("sql", "select * from raw.orders", "--limit", "5", "-w", ws_path)
    assert result.exit_code == 0 and "5 of" in result.stdout

    result = invoke(
        "sql",
        "select customer_id, plan from raw.customers",
        "--output-table",
        "ml.ids",
        "-w",
        ws_path,
        "--json",
    )
    assert json.loads(result.stdout) == {
        "table": "ml.ids",
        "mode": "overwrite",
        "version": 0,
        "rows": 30,
    }
    result = invoke(
        "sql",
        "select customer_id, plan from raw.customers limit 2",
        "--output-table",
        "ml.ids",
        "--mode",
        "append",
        "-w",
        ws_path,
    )
    assert result.exit_code == 0 and "version 1" in result.stdout
    result = invoke("sql", "select 1", "--mode", "append", "-w", ws_path)
    assert "--mode needs --output-table" in _one_error_line(result.stderr)


def test_time_travel_and_maintenance(invoke: Invoke, ws_path: Path) -> None:
    for query in ("select 1 as a", "select 2 as a", "select 3 as a"):
        assert invoke("sql", query, "--output-table", "s.t", "-w", ws_path).exit_code == 0
    result = invoke("tables", "history", "s.t", "--limit", "2", "-w", ws_path, "--json")
    assert [h["version"] for h in json.loads(result.stdout)] == [2, 1]
    assert "WRITE" in invoke("tables", "history", "s.t", "-w", ws_path).stdout

    result = invoke("tables", "tag", "s.t", "first", "--version", "0", "-w", ws_path)
    assert result.exit_code == 0 and "version 0" in result.stdout
    result = invoke("tables", "restore", "s.t", "first", "-w", ws_path, "--json")
    assert json.loads(result.stdout)["version"] == 3
    result = invoke("tables", "show", "s.t", "-w", ws_path, "--json")
    assert json.loads(result.stdout)["rows"] == [{"a": 1}]
    result = invoke("tables", "show", "s.t", "--version", "1", "-w", ws_path, "--json")
    assert json.loads(result.stdout)["rows"] == [{"a": 2}]
    assert (
        "s.t (version 1)" in invoke("tables", "show", "s.t", "--version", "1", "-w", ws_path).stdout
    )

    result = invoke("tables", "vacuum", "s.t", "--retain", "0s", "--dry-run", "-w", ws_path)
    assert result.exit_code == 0 and "Would delete" in result.stdout
    result = invoke("tables", "vacuum", "s.t", "--retain", "soon", "-w", ws_path)
    assert result.exit_code == 2 and "duration 'soon'" in _one_error_line(result.stderr)
    result = invoke("tables", "optimize", "s.t", "-w", ws_path, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["table"] == "s.t"
    assert invoke("tables", "untag", "s.t", "first", "-w", ws_path).exit_code == 0

    result = invoke("tables", "drop", "s.t", "-w", ws_path)
    assert result.exit_code == 2 and "--yes" in _one_error_line(result.stderr)
    assert invoke("tables", "drop", "s.t", "--yes", "-w", ws_path).exit_code == 0
    assert "No tables" in invoke("tables", "list", "-w", ws_path).stdout


def test_unknown_table_is_one_line_and_exit_2(invoke: Invoke, ws_path: Path) -> None:
    for args in (["tables", "show", "raw.nope"], ["sql", "select * from raw.nope"]):
        result = invoke(*args, "-w", ws_path)
        assert result.exit_code == 2 and result.stdout == ""
        assert "table 'raw.nope' does not exist" in _one_error_line(result.stderr)


def test_debug_shows_the_traceback(invoke: Invoke, ws_path: Path) -> None:
    result = invoke("tables", "describe", "raw.nope", "-w", ws_path, "--debug")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: table 'raw.nope'")
    result = invoke("--debug", "tables", "describe", "raw.nope", "-w", ws_path)
    assert "Traceback" in result.stderr


def test_unexpected_errors_say_so(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> dict[str, str]:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("lakeloom.cli.basic._versions", boom)
    result = invoke("version")
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == (
        "error: unexpected RuntimeError: boom (rerun with --debug for the traceback)"
    )


def test_usage_errors_exit_2(invoke: Invoke, ws_path: Path) -> None:
    assert invoke("tables", "show").exit_code == 2
    assert invoke("nope").exit_code == 2
    assert invoke("--engine", "cobol", "version").exit_code == 2
    assert invoke("tables", "show", "s.t", "--limit", "-1", "-w", ws_path).exit_code == 2


def test_run_cli_returns_codes_without_exiting(
    ws_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["version", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lakeloom"]
    assert run_cli(["tables", "show", "raw.nope", "-w", str(ws_path)]) == 2
    assert capsys.readouterr().err.startswith("error: table 'raw.nope'")
    assert run_cli(["tables", "show"]) == 2
    assert "Missing argument" in capsys.readouterr().err
    assert run_cli(["--help"]) == 0


def test_load_reports_rejected_rows(invoke: Invoke, ws_path: Path) -> None:
    lines = ["id,amount"] + [f"{i},{'bad' if i == 7 else i * 2}" for i in range(100)] + ["1,2,3"]
    (ws_path / "Files" / "amounts.csv").write_text("\n".join(lines) + "\n")
    result = invoke("load", "amounts.csv", "--table", "raw.amounts", "-w", ws_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["rows_loaded"], report["rows_rejected"], report["version"]) == (99, 2, 0)
    assert [r["line"] for r in report["rejects"]] == [9, 102]
    result = invoke("load", "amounts.csv", "-t", "raw.amounts", "-w", ws_path)
    assert result.exit_code == 0 and "Loaded 99 rows" in result.stdout
    assert "2 row(s) rejected" in result.stderr and "bad" in result.stderr
    result = invoke("load", "missing.csv", "-t", "raw.m", "-w", ws_path)
    line = _one_error_line(result.stderr)
    assert result.exit_code == 2 and "does not exist" in line and "Files" in line


def test_ui_runs_mlflow_on_the_workspace_store(
    invoke: Invoke, ws_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(ui_module, "_serve", lambda cmd: seen.append(cmd) or 0)
    result = invoke("ui", "--port", "5055", "-w", ws_path)
    assert result.exit_code == 0, result.output
    cmd = seen[0]
    assert cmd[1:4] == ["-m", "mlflow", "ui"]
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{ws_path}/mlflow.db"
    assert cmd[cmd.index("--default-artifact-root") + 1] == str(ws_path / "mlartifacts")
    assert cmd[-4:] == ["--host", "127.0.0.1", "--port", "5055"]
    assert "http://127.0.0.1:5055" in result.stderr


def test_ui_with_a_tracking_server_prints_where_it_is(
    invoke: Invoke, ws_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKELOOM_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setattr(ui_module, "_serve", lambda cmd: pytest.fail("must not start a server"))
    result = invoke("ui", "-w", ws_path)
    assert result.exit_code == 0 and "http://127.0.0.1:5999" in result.stdout
