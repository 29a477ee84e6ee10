"""``lakeloom run FILE``: validate a pipeline file, then run its steps in order."""

from __future__ import annotations

import click
from rich.console import Console

from lakeloom.cli.output import StepProgress, format_value, out_console, print_json, rows_table
from lakeloom.cli.state import common_options, get_state
from lakeloom.pipelines import (
    RunResult,
    StepFailed,
    load_pipeline,
    parse_param_overrides,
    run_pipeline,
)
from lakeloom.pipelines.runlog import StepRecord

__all__ = ["render_steps", "run"]


def render_steps(
    console: Console,
    records: list[StepRecord],
    *,
    title: str | None = None,
    outputs: bool = True,
) -> None:
    """A table of steps: status, time and (with ``outputs``) the tables each wrote."""
    columns = ["step", "kind", "status", "time"] + (["wrote"] if outputs else [])
    rows = []
    for r in records:
        row: list[object] = [
            r.step,
            r.kind,
            r.status,
            f"{r.duration_s:.2f}s" if r.duration_s is not None else "",
        ]
        if outputs:
            row.append("\n".join(f"{o.table} v{o.version}" for o in r.outputs) or r.error or "")
        rows.append(row)
    console.print(rows_table(columns, rows, title=title))


@click.command()
@click.argument("file", metavar="FILE")
@click.option("--from", "from_step", metavar="STEP", help="Run STEP and the steps after it.")
@click.option("--only", metavar="STEP", help="Run STEP only.")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help='Override a [params] value (TOML syntax: 500, 2026-01-01, "text"). Repeatable.',
)
@common_options
def run(file: str, from_step: str | None, only: str | None, params: tuple[str, ...]) -> None:
    """Run the pipeline FILE (TOML) in the workspace.

    The whole file is checked before any step runs. Each step's run is logged in the table
    lakeloom.pipeline_runs with the versions of the tables it read and wrote; a failing step
    stops the run (exit code 2).
    """
    state = get_state()
    if from_step is not None and only is not None:
        raise click.UsageError("pass --from or --only, not both")
    spec = load_pipeline(file, parse_param_overrides(params))
    spec.select(from_step=from_step, only=only)  # an unknown step fails before opening
    ws = state.open()
    progress = StepProgress()
    try:
        result = run_pipeline(ws, spec, from_step=from_step, only=only, on_event=progress)
    except StepFailed as exc:
        if state.json:
            print_json(exc.result.to_dict())
        raise
    finally:
        progress.close()
    if state.json:
        print_json(result.to_dict())
        return
    _summary(result)


def _summary(result: RunResult) -> None:
    console = out_console()
    render_steps(console, result.records, title=f"pipeline {result.pipeline}")
    ran = sum(r.status == "succeeded" for r in result.records)
    console.print(
        f"{ran} step(s) succeeded in {format_value(round(result.duration_s, 2))}s "
        f"(run {result.run_id}, logged in lakeloom.pipeline_runs).",
        markup=False,
    )
