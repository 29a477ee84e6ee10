"""``lakeloom run``: steps, --from/--only, params, and bad files as one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

Invoke = Callable[..., Result]

PIPELINE = """
name = "tiny"

[params]
customers = 20

[[steps]]
name = "generate"
kind = "generate_churn"
customers = "${params.customers}"

[[steps]]
name = "count"
kind = "sql"
query = "select count(*) as n from raw.customers"
output_table = "ml.count"
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE)
    return path


def test_run_prints_steps_and_a_summary(invoke: Invoke, ws_path: Path, pipeline: Path) -> None:
    result = invoke("run", pipeline, "-w", ws_path)
    assert result.exit_code == 0, result.output
    assert "✓ generate" in result.stderr and "✓ count" in result.stderr
    assert "2 step(s) succeeded" in result.stdout and "ml.count v0" in result.stdout


def test_run_json_param_from_and_only(invoke: Invoke, ws_path: Path, pipeline: Path) -> None:
    result = invoke("run", pipeline, "--param", "customers=7", "-w", ws_path, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and [s["status"] for s in doc["steps"]] == ["succeeded"] * 2
    counted = invoke("sql", "select n from ml.count", "-w", ws_path, "--json")
    assert json.loads(counted.stdout)["rows"] == [{"n": 7}]

    result = invoke("run", pipeline, "--only", "count", "-w", ws_path, "--json")
    doc = json.loads(result.stdout)
    assert [s["status"] for s in doc["steps"]] == ["skipped", "succeeded"]
    assert doc["outputs"] == [{"table": "ml.count", "version": 1}]
    result = invoke("run", pipeline, "--from", "generate", "-w", ws_path, "--json")
    assert [s["status"] for s in json.loads(result.stdout)["steps"]] == ["succeeded"] * 2

    log = invoke(
        "sql",
        "select status, count(*) as n from lakeloom.pipeline_runs group by status order by 1",
        "-w",
        ws_path,
        "--json",
    )
    assert json.loads(log.stdout)["rows"] == [
        {"status": "skipped", "n": 1},
        {"status": "succeeded", "n": 5},
    ]


BAD_FILES = {
    "unknown kind": ('kind = "sql"', 'kind = "sqll"', "unknown kind 'sqll'"),
    "unknown key": ('output_table = "ml.count"', 'output = "ml.count"', "unknown key 'output'"),
    "wrong type": ('customers = "${params.customers}"', 'customers = "x"', "key 'customers'"),
    "duplicate": ('name = "count"', 'name = "generate"', "is used twice"),
    "toml": ("[params]", "[params", "is not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_pipeline_files_are_one_line_errors(
    invoke: Invoke, ws_path: Path, tmp_path: Path, case: str
) -> None:
    old, new, expected = BAD_FILES[case]
    path = tmp_path / "bad.toml"
    path.write_text(PIPELINE.replace(old, new, 1 if case != "duplicate" else -1))
    result = invoke("run", path, "-w", ws_path)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and expected in lines[0]
    assert result.stdout == ""
    assert not invoke("tables", "list", "-w", ws_path, "--json").stdout.count("raw.customers")


def test_unknown_step_and_conflicting_options(
    invoke: Invoke, ws_path: Path, pipeline: Path
) -> None:
    result = invoke("run", pipeline, "--from", "nope", "-w", ws_path)
    assert result.exit_code == 2
    assert "--from names step 'nope', which does not exist; steps: generate, count" in (
        result.stderr
    )
    result = invoke("run", pipeline, "--from", "count", "--only", "count", "-w", ws_path)
    assert result.exit_code == 2 and "not both" in result.stderr
    result = invoke("run", pipeline, "--param", "nope=1", "-w", ws_path)
    assert result.exit_code == 2 and "--param nope is not a param" in result.stderr
    result = invoke("run", ws_path / "missing.toml", "-w", ws_path)
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_a_failing_step_exits_2_naming_the_step(
    invoke: Invoke, ws_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "fails.toml"
    path.write_text(PIPELINE.replace("from raw.customers", "from raw.nothing"))
    result = invoke("run", path, "-w", ws_path)
    assert result.exit_code == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: step 'count' (sql) of pipeline 'tiny' failed: ")
    assert "✗ count" in result.stderr and "✓ generate" in result.stderr
    result = invoke("run", path, "-w", ws_path, "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["ok"] is False
