"""Running pipelines: step order, --from/--only, failures, and the run log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakeloom import Workspace
from lakeloom.pipelines import StepFailed, load_pipeline, run_pipeline
from lakeloom.pipelines.runlog import RUN_LOG_TABLE, read_run

PIPELINE = '''
name = "small"

[[steps]]
name = "generate"
kind = "generate_churn"
customers = 40
seed = 3

[[steps]]
name = "plans"
kind = "sql"
query = "select plan, count(*) as n from raw.customers group by plan order by plan"
output_table = "features.plans"

[[steps]]
name = "report"
kind = "sql"
query = """
select p.plan, p.n, count(l.customer_id) as labels
from features.plans p
join raw.customers c using (plan)
join raw.churn_labels l using (customer_id)
group by all
"""
output_table = "ml.report"
'''


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE)
    return path


def _log(workspace: Workspace) -> list[dict[str, object]]:
    rows = workspace.tables.read(RUN_LOG_TABLE).to_pylist()
    return sorted(rows, key=lambda r: (r["started_at"] is None, r["run_id"], r["step_index"]))


def test_a_run_logs_every_step_with_inputs_and_outputs(
    workspace: Workspace, pipeline: Path
) -> None:
    events: list[tuple[str, str, str]] = []
    result = run_pipeline(
        workspace,
        load_pipeline(pipeline),
        on_event=lambda e, r: events.append((e, r.step, r.status)),
    )
    assert result.ok and [r.status for r in result.records] == ["succeeded"] * 3
    assert events[:2] == [("start", "generate", "running"), ("end", "generate", "succeeded")]
    logged = read_run(workspace, result.run_id)
    assert [(r.step, r.kind, r.status) for r in logged] == [
        ("generate", "generate_churn", "succeeded"),
        ("plans", "sql", "succeeded"),
        ("report", "sql", "succeeded"),
    ]
    generate, plans, report = logged
    assert [o.to_dict() for o in generate.outputs] == [
        {"table": "raw.customers", "version": 0},
        {"table": "raw.orders", "version": 0},
        {"table": "raw.churn_labels", "version": 0},
        {"table": "raw.new_customers", "version": 0},
    ]
    assert [i.table for i in plans.inputs] == ["raw.customers"]
    assert sorted(i.table for i in report.inputs) == [
        "features.plans",
        "raw.churn_labels",
        "raw.customers",
    ]
    assert report.outputs[0].to_dict() == {"table": "ml.report", "version": 0}
    for record in logged:
        assert record.started_at is not None and record.ended_at is not None
        assert record.started_at <= record.ended_at and (record.duration_s or 0) >= 0
        assert record.error is None
    row = _log(workspace)[0]
    assert json.loads(str(row["outputs"]))[0] == {"table": "raw.customers", "version": 0}
    assert workspace.tables.read("ml.report").num_rows > 0


def test_rerunning_is_idempotent_and_from_only_select_steps(
    workspace: Workspace, pipeline: Path
) -> None:
    spec = load_pipeline(pipeline)
    run_pipeline(workspace, spec)
    first = workspace.tables.read("ml.report")
    again = run_pipeline(workspace, spec, from_step="plans")
    assert [r.status for r in again.records] == ["skipped", "succeeded", "succeeded"]
    assert workspace.tables.version("raw.customers") == 0  # not regenerated
    assert workspace.tables.version("ml.report") == 1
    # overwrite: same content (SQL results carry no row order)
    keys = [(c, "ascending") for c in first.column_names]
    assert workspace.tables.read("ml.report").sort_by(keys).equals(first.sort_by(keys))
    only = run_pipeline(workspace, spec, only="report")
    assert [r.status for r in only.records] == ["skipped", "skipped", "succeeded"]
    assert only.records[2].inputs[0].to_dict() == {"table": "features.plans", "version": 1}
    logged = read_run(workspace, only.run_id)
    assert [r.status for r in logged] == ["skipped", "skipped", "succeeded"]
    assert logged[0].started_at is None and logged[0].outputs == []


def test_a_failing_step_stops_the_run_and_is_logged(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(
        PIPELINE.replace("from raw.customers group by plan", "from raw.missing group by plan")
    )
    with pytest.raises(StepFailed) as err:
        run_pipeline(workspace, load_pipeline(path))
    message = str(err.value)
    assert message.startswith("step 'plans' (sql) of pipeline 'small' failed: ")
    assert "raw.missing" in message and "\n" not in message
    result = err.value.result
    assert [r.status for r in result.records] == ["succeeded", "failed", "skipped"]
    logged = read_run(workspace, result.run_id)
    assert [r.status for r in logged] == ["succeeded", "failed", "skipped"]
    assert "raw.missing" in (logged[1].error or "")
    assert not workspace.tables.exists("ml.report")


def test_merge_mode_upserts(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "merge.toml"
    path.write_text(
        """
name = "m"
[params]
value = 1
[[steps]]
name = "upsert"
kind = "sql"
query = "select * from (values (1, ${params.value}), (2, 20)) t(id, v)"
output_table = "ml.kv"
mode = "merge"
keys = ["id"]
"""
    )
    run_pipeline(workspace, load_pipeline(path))
    run_pipeline(workspace, load_pipeline(path, {"value": 5}))
    rows = sorted(workspace.tables.read("ml.kv").to_pylist(), key=lambda r: r["id"])
    assert rows == [{"id": 1, "v": 5}, {"id": 2, "v": 20}]


def test_load_step(workspace: Workspace, tmp_path: Path) -> None:
    (Path(workspace.files_dir) / "people.csv").write_text("id,name\n1,ann\n2,bob\n")
    path = tmp_path / "load.toml"
    path.write_text(
        'name = "l"\n[[steps]]\nname = "people"\nkind = "load"\npath = "people.csv"\n'
        'table = "raw.people"\n'
    )
    result = run_pipeline(workspace, load_pipeline(path))
    assert result.records[0].message == "2 rows into raw.people v0"
    assert result.outputs()[0].to_dict() == {"table": "raw.people", "version": 0}
