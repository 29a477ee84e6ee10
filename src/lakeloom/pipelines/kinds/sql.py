"""The ``sql`` step kind: a query over the lakehouse whose result becomes a table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import duckdb

from lakeloom.errors import InvalidTableName
from lakeloom.lakehouse.names import parse_table_name
from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = ["SqlParams", "referenced_tables", "sql_step"]

_QUALIFIED = re.compile(r'"?([A-Za-z_][A-Za-z0-9_]*)"?\s*\.\s*"?([A-Za-z_][A-Za-z0-9_]*)"?')


def referenced_tables(query: str, known: list[str]) -> list[str]:
    """The existing tables (of ``known``) that ``query`` reads, sorted."""
    try:
        found = " ".join(duckdb.get_table_names(query, qualified=True))
    except duckdb.Error:
        found = query  # not parseable alone: scan the text for schema.table names
    names = {f"{m.group(1)}.{m.group(2)}".lower() for m in _QUALIFIED.finditer(found)}
    return sorted(names & set(known))


@dataclass(frozen=True)
class SqlParams:
    """Keys of a ``sql`` step."""

    query: str
    output_table: str
    mode: Literal["overwrite", "append", "merge"] = "overwrite"
    #: Columns identifying a row, for ``mode = "merge"`` (an upsert).
    keys: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.query.strip():
            raise ValueError("key 'query' must not be empty")
        try:
            parse_table_name(self.output_table)
        except InvalidTableName as exc:
            raise ValueError(f"key 'output_table': {exc}") from None
        if self.mode == "merge" and not self.keys:
            raise ValueError(
                "key 'keys' is required with mode = 'merge' (the columns that identify a row)"
            )
        if self.keys and self.mode != "merge":
            raise ValueError("key 'keys' is only used with mode = 'merge'")


@step_kind("sql")
def sql_step(ctx: StepContext, params: SqlParams) -> str | None:
    """Run a SQL query over the lakehouse and write its result to a table."""
    ws = ctx.workspace
    for name in referenced_tables(params.query, ws.tables.table_names()):
        ctx.used(name)
    frame = ws.sql(params.query)
    target = params.output_table
    if params.mode == "merge":
        version = ws.tables.merge(target, frame, keys=params.keys or [])
    else:
        version = ws.tables.write(
            target,
            frame,
            mode=params.mode,
            schema_mode="overwrite" if params.mode == "overwrite" else None,
        )
    ctx.wrote(".".join(parse_table_name(target)), version)
    rows = getattr(frame, "num_rows", None)
    count = f"{rows:,} rows " if isinstance(rows, int) else ""
    return f"{count}into {target} v{version}"
