"""``lakeloom demo``: the churn pipeline end to end in ./lakeloom-demo."""

from __future__ import annotations

import click

from lakeloom.cli.output import (
    StepProgress,
    format_value,
    kv_table,
    out_console,
    print_json,
    rows_table,
)
from lakeloom.cli.run import render_steps
from lakeloom.cli.state import ENGINES, common_options, get_state
from lakeloom.demo import run_demo

__all__ = ["DEFAULT_WORKSPACE", "demo"]

#: Where the demo runs unless --workspace says otherwise ($LAKELOOM_WORKSPACE is ignored,
#: so the demo never overwrites tables of a real workspace by accident).
DEFAULT_WORKSPACE = "./lakeloom-demo"


@click.command(short_help="Run the churn pipeline in a demo workspace.")
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=None,
    help="Customers to generate [default: the pipeline's, 5000].",
)
@click.option("--seed", type=int, default=None, help="Random seed [default: the pipeline's].")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help="Run on this engine (spark: the SQL on Spark, plus a Spark ML step).",
)
@common_options
def demo(customers: int | None, seed: int | None, engine: str | None) -> None:
    """Run the churn pipeline (examples/churn/pipeline.toml) in a demo workspace.

    Creates the workspace (--workspace, default ./lakeloom-demo), generates raw data, builds
    feature tables and a point-in-time training set, and prints what it made. Running it
    again overwrites the demo's tables with new versions.
    """
    state = get_state()
    if engine is not None:
        state.engine = engine
    ws = state.init(state.workspace or DEFAULT_WORKSPACE)
    progress = StepProgress()
    try:
        result = run_demo(ws, customers=customers, seed=seed, on_event=progress)
    finally:
        progress.close()
    if state.json:
        print_json(result.to_dict())
        return
    console = out_console()
    render_steps(console, result.steps, title=f"pipeline {result.pipeline}", outputs=False)
    rows = [[t.table, t.version, t.rows] for t in result.tables]
    console.print(rows_table(["table", "version", "rows"], rows, title="tables"))
    if result.models:
        models = [
            [
                m.name,
                m.latest_version,
                ", ".join(f"{a} -> v{v}" for a, v in sorted(m.aliases.items())) or "-",
                ", ".join(f"{k} {v:.3f}" for k, v in m.metrics.items()) or "-",
            ]
            for m in result.models
        ]
        console.print(
            rows_table(
                ["model", "latest", "aliases", "held-out metrics (production, else latest)"],
                models,
                title="registered models",
            )
        )
    where = {
        "workspace": result.workspace,
        "MLflow store": result.tracking_uri,
        "artifacts": result.artifact_root,
        "run": f"{result.run_id} ({format_value(round(result.duration_s, 2))}s)",
    }
    for i, report in enumerate(result.reports):
        where[f"report {i + 1}" if len(result.reports) > 1 else "report"] = report
    console.print(kv_table(where))
    console.print("\nNext:")
    for command in result.next_commands:
        console.print(f"  {command}", markup=False, soft_wrap=True)
