"""``lakeloom load FILE`` and ``lakeloom data churn``: bring data into the lakehouse."""

from __future__ import annotations

import datetime
from typing import Literal

import click

from lakeloom.cli.output import err_console, kv_table, out_console, print_json, rows_table, warn
from lakeloom.cli.state import common_options, get_state
from lakeloom.lakehouse.files import FORMATS, load_file
from lakeloom.pipelines.kinds.data import write_churn

__all__ = ["data", "load"]


@click.command(short_help="Load a CSV, Parquet or JSON file into a table.")
@click.argument("file", metavar="FILE")
@click.option("--table", "-t", required=True, metavar="T", help="Table to write (schema.table).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default=None,
    help="File format [default: from the extension].",
)
@click.option(
    "--mode",
    type=click.Choice(["overwrite", "append"]),
    default="overwrite",
    show_default=True,
    help="Replace the table or add rows to it.",
)
@common_options
def load(file: str, table: str, fmt: str | None, mode: Literal["overwrite", "append"]) -> None:
    """Load a CSV, Parquet or JSON FILE into a table, with inferred column types.

    FILE is relative to the workspace's Files/ folder, or absolute. CSV rows that do not fit
    (bad values, missing or extra columns) are skipped and reported with their line numbers.
    """
    state = get_state()
    ws = state.open()
    with err_console().status(f"Loading {file} ..."):
        report = load_file(ws.tables, ws.files_dir, file, table, format=fmt, mode=mode)
    if state.json:
        print_json(report.to_dict())
        return
    console = out_console()
    console.print(
        f"Loaded {report.rows_loaded:,} rows from {report.path} into {report.table} "
        f"(version {report.version}, {report.mode}).",
        markup=False,
    )
    console.print(rows_table(["column", "type"], list(report.columns.items())))
    if report.rows_rejected:
        warn(f"{report.rows_rejected:,} row(s) rejected; the first ones:")
        rows = [[r.line, r.column, r.error, r.text] for r in report.rejects]
        err_console().print(rows_table(["line", "column", "error", "row"], rows))


@click.group()
@common_options
def data() -> None:
    """Generate data sets into the workspace."""


@data.command()
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Number of customers.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Snapshot date (YYYY-MM-DD) [default: 2026-01-01].",
)
@click.option("--schema", default="raw", show_default=True, help="Schema of the tables.")
@common_options
def churn(customers: int, seed: int, as_of: datetime.datetime | None, schema: str) -> None:
    """Generate synthetic churn data: raw.customers, raw.orders, raw.churn_labels and
    raw.new_customers (each overwritten)."""
    state = get_state()
    ws = state.open()
    with err_console().status(f"Generating {customers:,} customers ..."):
        written = write_churn(
            ws,
            customers=customers,
            seed=seed,
            as_of=as_of.date() if as_of else None,
            schema=schema,
        )
    infos = [ws.tables.describe(t.table) for t in written]
    doc = [{"table": i.name, "version": i.version, "rows": i.rows} for i in infos]
    if state.json:
        print_json({"customers": customers, "seed": seed, "tables": doc})
        return
    console = out_console()
    console.print(kv_table({"customers": customers, "seed": seed}))
    console.print(rows_table(["table", "version", "rows"], [list(d.values()) for d in doc]))
