"""``lakeloom sql "QUERY"``: SQL over the lakehouse, printed or written to a table."""

from __future__ import annotations

import sys
from typing import Literal

import click

from lakeloom.cli.output import arrow_table, out_console, print_json
from lakeloom.cli.state import common_options, get_state
from lakeloom.errors import InvalidArgument

__all__ = ["sql"]


@click.command(short_help="Run SQL over the workspace's tables.")
@click.argument("query")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Rows to print (0: all).",
)
@click.option("--output-table", metavar="T", help="Write the result to table T instead.")
@click.option(
    "--mode",
    type=click.Choice(["overwrite", "append"]),
    default=None,
    help="With --output-table: replace the table (default) or add rows.",
)
@common_options
def sql(query: str, limit: int, output_table: str | None, mode: str | None) -> None:
    """Run QUERY (DuckDB SQL on the local engine) over the workspace's tables.

    Tables are named schema.table, e.g. `select plan, count(*) from raw.customers group by
    plan`. QUERY `-` reads the query from stdin. With --json the rows are printed as JSON.
    """
    state = get_state()
    if query == "-":
        query = sys.stdin.read()
    if mode is not None and output_table is None:
        raise InvalidArgument("--mode needs --output-table")
    ws = state.open()
    frame = ws.sql(query)
    if output_table is not None:
        write_mode: Literal["append", "overwrite"] = "append" if mode == "append" else "overwrite"
        version = ws.tables.write(
            output_table,
            frame,
            mode=write_mode,
            schema_mode="overwrite" if write_mode == "overwrite" else None,
        )
        rows = getattr(frame, "num_rows", None)
        doc = {"table": output_table, "mode": write_mode, "version": version, "rows": rows}
        if state.json:
            print_json(doc)
        else:
            count = f"{rows:,} rows" if isinstance(rows, int) else "the result"
            out_console().print(f"Wrote {count} to {output_table} (version {version}).")
        return
    data = ws.engine.to_arrow(frame)
    total = data.num_rows
    if limit:
        data = data.slice(0, limit)
    if state.json:
        print_json(
            {
                "columns": [{"name": f.name, "type": str(f.type)} for f in data.schema],
                "rows": data.to_pylist(),
                "row_count": total,
                "truncated": data.num_rows < total,
            }
        )
        return
    out_console().print(arrow_table(data, total_rows=total))
