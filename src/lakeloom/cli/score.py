"""``lakeloom score``: score a table with a registered model into another table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from lakeloom.cli.output import err_console, kv_table, out_console, print_json
from lakeloom.cli.state import ENGINES, common_options, get_state

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["score"]


class _Bar:
    """A rich progress bar on stderr, fed with the rows scored so far."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress: Progress = Progress(
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=err_console(),
            transient=True,
        )
        self._task: TaskID | None = None

    def start(self, total: int | None) -> None:
        self._progress.start()
        self._task = self._progress.add_task("score", total=total)

    def update(self, rows: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=rows)

    def stop(self) -> None:
        self._progress.stop()


@click.command(short_help="Score a table with a model into a table (batch scoring).")
@click.option(
    "--model",
    required=True,
    metavar="URI",
    help="models:/NAME@ALIAS, models:/NAME/VERSION, NAME@ALIAS or runs:/RUN/PATH.",
)
@click.option("--input-table", required=True, metavar="T", help="The rows to score.")
@click.option("--output-table", required=True, metavar="T", help="Where the predictions go.")
@click.option(
    "--mode",
    type=click.Choice(["overwrite", "append", "merge"]),
    default="overwrite",
    show_default=True,
    help="Replace the output table, add rows, or upsert on the key columns.",
)
@click.option(
    "--keys",
    default=None,
    metavar="A,B",
    help="Key columns copied to the output (merge matches on them) [default: a feature-aware "
    "model's lookup keys, else the input's columns the model does not take].",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default=None,
    help="spark: distributed, and Spark ML models [default: the workspace's].",
)
@common_options
def score(
    model: str,
    input_table: str,
    output_table: str,
    mode: str,
    keys: str | None,
    engine: str | None,
) -> None:
    """Score INPUT_TABLE with MODEL into OUTPUT_TABLE in one commit.

    The output holds the key columns, `prediction`, `probability_<class>` for classifiers,
    and model_name, model_version, run_id and scored_at. Re-running with overwrite or merge
    gives the same table. Example:

        lakeloom score --model models:/churn_model@production --input-table raw.new_customers
        --output-table predictions.customer_churn
    """
    state = get_state()
    if engine is not None:
        state.engine = engine
    key_list = [k.strip() for k in keys.split(",") if k.strip()] if keys is not None else None
    ws = state.open()
    bar = _Bar() if not state.json else None
    options: dict[str, Any] = {}
    if bar is not None:
        options = {"on_start": bar.start, "progress": bar.update}
    try:
        result = ws.score_batch(
            model, input_table, output_table=output_table, mode=mode, keys=key_list, **options
        )
    finally:
        if bar is not None:
            bar.stop()
    if state.json:
        print_json(result.to_dict())
        return
    rows = f"{result.rows:,}" if result.rows is not None else "?"
    version = f" version {result.model_version}" if result.model_version is not None else ""
    out_console().print(
        kv_table(
            {
                "scored": f"{rows} rows of {input_table} in {result.seconds:.2f}s",
                "model": f"{result.model_name or result.model_uri}{version} (run {result.run_id})",
                "output": f"{result.output_table} version {result.version} ({mode})",
                "columns": ", ".join(result.columns),
            }
        )
    )
