"""Arrow values as JSON text, written by DuckDB's vectorised JSON writer.

On one thread and without the GIL: what the endpoint's inference table needs to log every
scored row without slowing the endpoint. NaN and infinities become ``null`` (JSON has no
such numbers), binary values base64 text (as requests send them), times ISO-like text,
lists and structs JSON arrays and objects.
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa

__all__ = ["json_values"]

_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection (one thread: the caller's, no pool of its own)."""
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("set threads=1")
        con.execute("set TimeZone='UTC'")
        _local.con = con
    return con


def _value(column: str, t: pa.DataType) -> str:
    """The SQL expression giving ``column``'s JSON-ready value."""
    if pa.types.is_floating(t):
        return f"if(isfinite({column}), {column}, NULL)"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return f"to_base64({column}::blob)"
    return column


def _run(table: pa.Table, expression: str) -> pa.Array:
    con = _connection()
    con.register("__lakeloom_json", table)
    try:
        out = con.sql(f"select {expression} as j from __lakeloom_json").to_arrow_table()
    finally:
        con.unregister("__lakeloom_json")
    return out.column(0).combine_chunks().cast(pa.string())


def _text(column: str, t: pa.DataType) -> str:
    """The SQL expression giving ``column``'s values as JSON text (``null`` for nulls)."""
    return f"coalesce(to_json({_value(column, t)})::varchar, 'null')"


def json_values(values: pa.Array) -> pa.Array:
    """Each value as JSON text; a null (or NaN, or an infinity) is the text ``null``."""
    table = pa.table([values], names=["c0"])
    return _run(table, _text("c0", values.type))
