"""``lakeloom runs ...``: experiments and the comparison of their runs."""

from __future__ import annotations

import math
from typing import Any

import click

from lakeloom.cli.output import out_console, print_json, rows_table
from lakeloom.cli.state import common_options, get_state

__all__ = ["runs"]


@click.group(short_help="Compare MLflow runs of an experiment.")
@common_options
def runs() -> None:
    """MLflow experiments and runs of the workspace."""


@runs.command("experiments")
@common_options
def experiments() -> None:
    """List the experiments."""
    state = get_state()
    names = state.open().runs.experiments()
    if state.json:
        print_json(names)
        return
    out_console().print(rows_table(["experiment"], [[n] for n in names]))


@runs.command("compare")
@click.option("--experiment", required=True, metavar="NAME")
@click.option(
    "--metric",
    default=None,
    help="Sort by this metric, best first [default: the metric the runs were trained for].",
)
@click.option("--parent", "parent_run", default=None, metavar="RUN_ID", help="One training.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N")
@common_options
def compare(experiment: str, metric: str | None, parent_run: str | None, limit: int | None) -> None:
    """Print the finished runs of an experiment sorted by a metric (ties: earlier run first)."""
    state = get_state()
    table = state.open().runs.compare(experiment, metric, parent_run=parent_run)
    metric = str(table.attrs["metric"])
    if limit is not None:
        table = table.head(limit)
    records: list[dict[str, Any]] = [
        {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in table.to_dict(orient="records")
    ]
    if state.json:
        print_json(
            {
                "experiment": experiment,
                "metric": metric,
                "higher_is_better": table.attrs["higher_is_better"],
                "runs": records,
            }
        )
        return
    order = "higher is better" if table.attrs["higher_is_better"] else "lower is better"
    others = [
        c
        for c in table.columns
        if c not in ("rank", "run_id", "run_name", "model", metric, "status", "start_time")
        and c != "parent_run_id"
    ]
    keep = [m for m in ("accuracy", "f1", "log_loss", "rmse", "r2") if m in others][:3]
    columns = ["rank", "model", metric, *keep, "run_id", "start_time"]
    rows = [
        [r["rank"], r["model"] or r["run_name"], r[metric], *[r.get(k) for k in keep],
         r["run_id"], r["start_time"].isoformat(sep=" ", timespec="seconds")
         if r["start_time"] is not None else None]
        for r in records
    ]  # fmt: skip
    out_console().print(
        rows_table(columns, rows, title=f"{experiment}: runs by {metric} ({order})")
    )
