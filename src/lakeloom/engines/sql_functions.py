"""Calls of :class:`~lakeloom.engines.base.SqlFunction` in SQL text, rewritten for an engine.

A call is ``name('key', *)`` or ``name('key', col1, col2, ...)`` (the name is matched without
regard to case, outside string literals, quoted identifiers and comments). Each distinct
``(name, key)`` is bound once, to a :class:`~lakeloom.engines.base.RowFunction` that the engine
registers under a private name; the call becomes ``<private name>(<row>)`` where ``<row>`` is
the engine's expression for the row's arguments (DuckDB: the columns packed in a struct and
passed as JSON; Spark: ``struct(...)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lakeloom.engines.base import RowFunction, SqlFunction
from lakeloom.errors import InvalidArgument

__all__ = [
    "BoundCall",
    "FunctionErrors",
    "duckdb_row",
    "register_duckdb",
    "register_spark",
    "rewrite_calls",
    "rows_from_json",
    "spark_row",
]

_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$]")


@dataclass(frozen=True)
class BoundCall:
    """A function the engine registers for one query: its private name and what it runs."""

    name: str
    function: RowFunction


def _skip(text: str, i: int) -> int:
    """The index after the literal, quoted identifier or comment starting at ``i`` (else ``i``)."""
    ch = text[i]
    if ch in ("'", '"', "`"):
        j = i + 1
        while j < len(text):
            if text[j] == ch:
                if text.startswith(ch * 2, j):
                    j += 2
                    continue
                return j + 1
            j += 1
        return len(text)
    if text.startswith("--", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end + 1
    if text.startswith("/*", i):
        end = text.find("*/", i + 2)
        return len(text) if end < 0 else end + 2
    return i


def _arguments(text: str, start: int, name: str) -> tuple[list[str], int]:
    """The top-level arguments of the call whose ``(`` is at ``start``; the index after it."""
    depth = 0
    args: list[str] = []
    begin = start + 1
    i = start
    while i < len(text):
        nxt = _skip(text, i)
        if nxt != i:
            i = nxt
            continue
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(text[begin:i].strip())
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(text[begin:i].strip())
            begin = i + 1
        i += 1
    raise InvalidArgument(f"the call of {name}() in the SQL query has no closing parenthesis")


def _literal(arg: str, name: str) -> str:
    if (
        len(arg) >= 2
        and arg[0] == "'"
        and arg[-1] == "'"
        and "'" not in arg[1:-1].replace("''", "")
    ):
        return arg[1:-1].replace("''", "'")
    raise InvalidArgument(
        f"the first argument of {name}() must be a string literal such as "
        f"{name}('churn_model@production', *), got {arg!r}"
    )


def rewrite_calls(
    query: str,
    functions: Sequence[SqlFunction],
    row: Callable[[list[str]], str],
) -> tuple[str, list[BoundCall]]:
    """``query`` with every call of ``functions`` replaced, and the functions to register.

    ``row`` turns a call's row arguments (``["*"]`` or column expressions) into the engine's
    expression for them.
    """
    if not functions:
        return query, []
    by_name = {f.name.lower(): f for f in functions}
    bound: dict[tuple[str, str], BoundCall] = {}
    out: list[str] = []
    i = 0
    while i < len(query):
        nxt = _skip(query, i)
        if nxt != i:
            out.append(query[i:nxt])
            i = nxt
            continue
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(query, i)
        if m is None:
            out.append(query[i])
            i += 1
            continue
        word = m.group(0)
        j = m.end()
        while j < len(query) and query[j].isspace():
            j += 1
        before = query[i - 1] if i else " "
        fn = by_name.get(word.lower())
        if fn is None or j >= len(query) or query[j] != "(" or before == ".":
            out.append(word)
            i = m.end()
            continue
        args, end = _arguments(query, j, fn.name)
        if not args or not args[0]:
            raise InvalidArgument(
                f"{fn.name}() needs a key: {fn.name}('churn_model@production', *)"
            )
        key = _literal(args[0], fn.name)
        rest = [a for a in args[1:]]
        if not rest or any(not a for a in rest):
            raise InvalidArgument(
                f"{fn.name}({args[0]}) needs the row's columns: {fn.name}({args[0]}, *) or "
                f"{fn.name}({args[0]}, col1, col2)"
            )
        if "*" in rest and rest != ["*"]:
            raise InvalidArgument(
                f"{fn.name}() takes either * or a list of columns after the key, not both"
            )
        ident = (fn.name.lower(), key)
        if ident not in bound:
            private = f"__lakeloom_{re.sub(r'[^a-z0-9_]', '_', fn.name.lower())}_{len(bound)}"
            bound[ident] = BoundCall(private, fn.bind(key))
        out.append(f"{bound[ident].name}({row(rest)})")
        i = end
    return "".join(out), list(bound.values())


# -- DuckDB (the local engine) ---------------------------------------------------------------
def duckdb_row(args: list[str]) -> str:
    """DuckDB's expression for a call's row: its columns packed in a struct, as JSON text."""
    columns = "*COLUMNS(*)" if args == ["*"] else ", ".join(args)
    return f"to_json(struct_pack({columns}))"


_DUCKDB_TYPES = {
    "bool": "BOOLEAN",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "string": "VARCHAR",
    "large_string": "VARCHAR",
}


def rows_from_json(values: Any) -> pa.Table:
    """The rows DuckDB passed as JSON objects, as an Arrow table (types inferred)."""
    import io

    import pyarrow.json as pajson

    texts = values.to_pylist() if hasattr(values, "to_pylist") else list(values)
    if not texts:
        return pa.table({})
    data = "\n".join(t if t is not None else "{}" for t in texts).encode("utf-8")
    return pajson.read_json(io.BytesIO(data))


class FunctionErrors:
    """Keeps the first lakeloom error a registered function raised (DuckDB reports text)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None


def _duckdb_udf(function: RowFunction, errors: FunctionErrors) -> Callable[[Any], Any]:
    def udf(values: Any) -> Any:
        try:
            return pa.array(function.fn(rows_from_json(values))).cast(function.return_type)
        except BaseException as exc:
            if errors.error is None:
                errors.error = exc
            raise

    return udf


def register_duckdb(con: Any, calls: Sequence[BoundCall], errors: FunctionErrors) -> None:
    """Register ``calls`` as Arrow scalar functions of the DuckDB connection ``con``."""
    import duckdb

    for call in calls:
        typ = _DUCKDB_TYPES.get(str(call.function.return_type))
        if typ is None:
            raise InvalidArgument(
                f"a SQL function returning {call.function.return_type} is not supported here"
            )
        udf = _duckdb_udf(call.function, errors)
        con.create_function(
            call.name,
            udf,
            [duckdb.sqltype("VARCHAR")],
            duckdb.sqltype(typ),
            type="arrow",
            side_effects=False,
        )


# -- Spark ---------------------------------------------------------------------------------
def spark_row(args: list[str]) -> str:
    """Spark SQL's expression for a call's row: ``struct(...)`` of its columns."""
    return f"struct({', '.join(args)})"


def register_spark(spark: Any, calls: Sequence[BoundCall]) -> None:
    """Register ``calls`` as pandas UDFs of the Spark session (they run on the executors)."""
    import pandas as pd
    from pyspark.sql.pandas.functions import pandas_udf

    from lakeloom.engines.spark_types import spark_schema

    def pandas_fn(fn: Callable[[pa.Table], pa.Array]) -> Callable[[pd.DataFrame], pd.Series]:
        def run(frame: pd.DataFrame) -> pd.Series:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            return pd.Series(pa.array(fn(table)).to_pandas())

        # pandas_udf reads the hints; this module's postponed annotations are mere text.
        run.__annotations__ = {"frame": pd.DataFrame, "return": pd.Series}
        return run

    for call in calls:
        spark_type = spark_schema(pa.schema([("v", call.function.return_type)])).fields[0].dataType
        udf = pandas_udf(pandas_fn(call.function.fn), spark_type)  # type: ignore[call-overload]
        spark.udf.register(call.name, udf)
