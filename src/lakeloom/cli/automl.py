"""``lakeloom automl run``: FLAML's search on a table, tracked, compared with manual runs."""

from __future__ import annotations

from typing import Any

import click

from lakeloom.cli.output import kv_table, out_console, print_json, rows_table
from lakeloom.cli.state import common_options, get_state

__all__ = ["automl"]


@click.group(short_help="AutoML: search models on a table within a time limit.")
@common_options
def automl() -> None:
    """AutoML with FLAML: featurize, search, ensemble, track and compare."""


@automl.command("run")
@click.option("--table", required=True, metavar="SCHEMA.TABLE", help="Training table.")
@click.option("--label", required=True, metavar="COLUMN", help="The column to predict.")
@click.option(
    "--time-limit",
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="Limit for the whole run: 90s, 5m, 1h.",
)
@click.option(
    "--task",
    type=click.Choice(["auto", "classification", "regression"]),
    default="auto",
    show_default=True,
)
@click.option("--trials", type=int, default=None, metavar="N", help="At most N trials.")
@click.option(
    "--models",
    default=None,
    metavar="A,B",
    help="Learners to search (lgbm, xgboost, rf, extra_tree, lrl1...).",
)
@click.option("--metric", default="auto", show_default=True, help="FLAML metric name.")
@click.option("--experiment", default=None, help="MLflow experiment [default: table name].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--register",
    "register_as",
    default=None,
    metavar="NAME",
    help="Register the winner as a new version of model NAME.",
)
@click.option("--alias", default=None, help="With --register: move this alias (gated).")
@click.option(
    "--holdout",
    default=None,
    metavar="SCHEMA.TABLE",
    help="With --alias: the rows the gate scores both models on.",
)
@common_options
def run(
    table: str,
    label: str,
    time_limit: str,
    task: str,
    trials: int | None,
    models: str | None,
    metric: str,
    experiment: str | None,
    seed: int,
    register_as: str | None,
    alias: str | None,
    holdout: str | None,
) -> None:
    """Search models for LABEL of TABLE; print the leaderboard and the manual comparison."""
    from lakeloom.automl.runner import run_automl

    state = get_state()
    ws = state.open()
    report = run_automl(
        ws,
        table,
        label,
        task=task,
        time_limit=time_limit,
        n_trials=trials,
        models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
        metric=metric,
        experiment=experiment,
        seed=seed,
        register_as=register_as,
        alias=alias,
        holdout=holdout,
    )
    if state.json:
        print_json(report.to_dict())
        return
    console = out_console()
    rows = [
        [r["trial"], r["model"], round(r["score"], 5), round(r["train_time_s"], 3)]
        for r in report.leaderboard
    ]
    console.print(
        rows_table(
            ["trial", "model", report.metric, "train_s"],
            rows,
            title=f"Leaderboard ({report.n_trials} trials, best first)",
        )
    )
    features = [[f["column"], f["kind"], f["action"], f["detail"]] for f in report.features]
    console.print(
        rows_table(
            ["column", "kind", "action", "detail"], features, title="Automatic feature engineering"
        )
    )
    summary: dict[str, Any] = {
        "best model": report.best_model,
        report.metric: round(report.best_score, 5),
        "run": report.run_id,
        "model": report.model_uri,
        "time": f"{report.seconds:.1f}s"
        + (f" ({report.overrun_seconds:+.1f}s vs limit)" if report.overrun_seconds else ""),
    }
    if report.manual is not None:
        verdict = "AutoML wins" if report.beats_manual else "the manual run wins"
        summary["best manual run"] = (
            f"{report.manual['model']} {report.metric} {report.manual['value']:.5f}: {verdict}"
        )
    else:
        summary["best manual run"] = "none in this experiment"
    if report.registered is not None:
        reg = report.registered
        gate = reg.get("gate") or {}
        summary["registered"] = f"{reg['name']} v{reg['version']}" + (
            f"; {reg['alias']}: {'promoted' if reg['promoted'] else 'refused'}"
            f" ({gate.get('reason', '')})"
            if reg.get("alias")
            else ""
        )
    console.print(kv_table(summary, title="AutoML"))
    for note in report.notes:
        console.print(note, style="dim", markup=False)
    if report.registered is not None and report.registered.get("promoted") is False:
        raise click.exceptions.Exit(1)  # the gate ran and said no
