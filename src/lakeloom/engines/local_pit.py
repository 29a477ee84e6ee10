"""The local engine's point-in-time join and latest row per key: DuckDB over the Delta files.

The join numbers the spine's rows and sends DuckDB only what matching needs (the row
number, the key columns and the time), one query per lookup: an ``ASOF LEFT JOIN`` for an
as-of lookup, a ``LEFT JOIN`` on the latest row per key for the others. DuckDB sorts the
answer by row number, so the features attach to the spine in its original order. One query
per lookup sorts one table at a time: about two thirds of the memory of joining every table
in one query, in the same time.

Memory is bounded by splitting large spines by a hash of the key into partitions of about
:data:`PARTITION_ROWS` rows, each joined with the matching part of the table: a key's rows
all land in one partition, so each partition's answer is exact. Their rows are scattered
back into spine order as they stream in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeloom.engines.arrow_input import to_arrow_input
from lakeloom.engines.base import PointInTimeLookup, TableRef
from lakeloom.engines.delta_log import (
    arrow_schema,
    check_readable,
    data_files,
    is_local_uri,
    open_delta,
)
from lakeloom.engines.pit_plan import (
    ROW_ID,
    check_latest,
    check_lookups,
    key_kind,
    tiebreak_columns,
)
from lakeloom.errors import InvalidArgument

if TYPE_CHECKING:
    from lakeloom.engines.local import LocalEngine

__all__ = ["PARALLEL_LOOKUPS", "PARTITION_ROWS", "latest_per_key", "point_in_time_join"]

#: Spine rows per partition of a point-in-time join (bounds DuckDB's working memory).
PARTITION_ROWS = 3_000_000
#: Lookups joined at the same time (each one query on its own DuckDB connection).
PARALLEL_LOOKUPS = 2
_TS = pa.timestamp("us", tz="UTC")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Source:
    """One version of a Delta table, readable from any DuckDB connection."""

    def __init__(self, engine: LocalEngine, ref: TableRef, version: int | None) -> None:
        dt = open_delta(ref, version=version)
        check_readable(dt, ref, engine.name)
        self.schema: pa.Schema = arrow_schema(dt)
        files = data_files(dt)
        self._expr: str | None = None
        self._data: Any = None
        if not files:
            self._data = self.schema.empty_table()
        elif is_local_uri(ref.uri) and not dt.metadata().partition_columns:
            # DuckDB's own Parquet reader: parallel, with projection pushdown.
            paths = [
                f.uri[len("file://") :] if f.uri.startswith("file://") else f.uri for f in files
            ]
            self._expr = (
                f"read_parquet([{', '.join(_literal(p) for p in paths)}], "
                "union_by_name = true, hive_partitioning = false)"
            )
        else:
            self._data = engine._dataset(dt, ref)

    def expr(self, con: duckdb.DuckDBPyConnection, alias: str = "__lakeloom_src") -> str:
        """A FROM-clause expression reading the table in ``con`` (registered as ``alias``)."""
        if self._expr is not None:
            return self._expr
        con.register(alias, self._data)
        return alias


def _as_time(expr: str, t: pa.DataType) -> str:
    """``expr`` as a UTC timestamp in microseconds (dates at midnight, naive times as UTC)."""
    if pa.types.is_timestamp(t) and t.unit == "us" and t.tz is not None:
        return expr
    return f"cast({expr} as timestamptz)"


def _as_key(expr: str, t: pa.DataType) -> str:
    """``expr`` in the type both sides of a key compare (and hash) as."""
    kind = key_kind(t)
    if kind == "integer" and t != pa.int64():
        return f"cast({expr} as bigint)"
    if kind == "string" and t != pa.string():
        return f"cast({expr} as varchar)"
    return expr


def _order(columns: Sequence[str]) -> str:
    """ORDER BY terms that put the row that sorts last (nulls first) first."""
    return ", ".join(f"{c} desc nulls last" for c in columns)


# -- latest row per key ----------------------------------------------------------------
def latest_per_key(
    engine: LocalEngine,
    table: TableRef,
    keys: Sequence[str],
    ts: str | None,
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """See :meth:`lakeloom.engines.base.Engine.latest_per_key`."""
    keys = list(keys)
    con = engine._connect()
    try:
        source = _Source(engine, table, version)
        expr, schema = source.expr(con), source.schema
        wanted = list(columns) if columns is not None else schema.names
        check_latest(table.name, schema, keys, ts, wanted)
        chosen = set(keys) | {ts} | set(wanted)
        out = [c for c in schema.names if c in chosen]
        order = [_q(ts)] if ts else []
        order += [_q(c) for c in tiebreak_columns(schema, out) if c not in keys and c != ts]
        not_null = " and ".join(f"{_q(k)} is not null" for k in keys)
        window = f"partition by {', '.join(_q(k) for k in keys)}"
        if order:
            window += f" order by {_order(order)}"
        query = (
            f"select {', '.join(_q(c) for c in out)} from {expr} where {not_null} "
            f"qualify row_number() over ({window}) = 1"
        )
        result = con.sql(query).to_arrow_table()
    finally:
        con.close()
    return _conform(result, pa.schema([schema.field(c) for c in out]))


def _conform(result: pa.Table, schema: pa.Schema) -> pa.Table:
    if result.schema.equals(schema, check_metadata=False):
        return result
    return pa.table([result.column(f.name).cast(f.type) for f in schema], schema=schema)


# -- point-in-time join ----------------------------------------------------------------
def _spine_table(spine: object) -> pa.Table:
    data = to_arrow_input(spine)
    return data.read_all() if isinstance(data, pa.RecordBatchReader) else data


def point_in_time_join(
    engine: LocalEngine, spine: object, lookups: Sequence[PointInTimeLookup]
) -> pa.Table:
    """See :meth:`lakeloom.engines.base.Engine.point_in_time_join`."""
    base = _spine_table(spine)
    opened: dict[tuple[str, int | None], _Source] = {}
    for lk in lookups:  # lookups of the same table version share its Delta log read
        if (lk.table.uri, lk.version) not in opened:
            opened[lk.table.uri, lk.version] = _Source(engine, lk.table, lk.version)
    sources = [opened[lk.table.uri, lk.version] for lk in lookups]
    check_lookups(base.schema, lookups, [source.schema for source in sources])
    con = engine._connect()
    # Shared by the lookups. A single partition is sorted by them: 32-bit numbers sort
    # faster; numpy scatters partitions by 64-bit ones (what it indexes with).
    n = base.num_rows
    row_ids = pa.array(np.arange(n, dtype=np.int32 if n <= PARTITION_ROWS else np.int64))

    def join(i: int) -> list[pa.ChunkedArray]:
        cursor = con.cursor()  # a connection of its own: registrations are per connection
        try:
            cursor.execute("set TimeZone='UTC'")
            source = sources[i]
            return _join_lookup(
                cursor, base, row_ids, lookups[i], source.expr(cursor), source.schema
            )
        finally:
            cursor.close()

    try:
        # Two lookups at a time: one query alone leaves a core idle part of the time.
        with ThreadPoolExecutor(max_workers=PARALLEL_LOOKUPS) as pool:
            joined = list(pool.map(join, range(len(lookups))))
    finally:
        con.close()
    result = base
    for lookup, columns in zip(lookups, joined, strict=True):
        for name, column in zip(lookup.outputs, columns, strict=True):
            result = result.append_column(name, column)
    return result


def _join_lookup(
    con: duckdb.DuckDBPyConnection,
    base: pa.Table,
    row_ids: pa.Array,
    lookup: PointInTimeLookup,
    expr: str,
    schema: pa.Schema,
) -> list[pa.ChunkedArray]:
    """``lookup``'s feature columns for every spine row, in spine order.

    One query per lookup (and partition): each sorts only the spine's matching columns and
    one table, which takes about two thirds of the memory of joining every table in one
    query, for the same time. A single partition comes back in spine order from DuckDB's
    own sort by row number; several are scattered into place as they stream in.
    """
    n = base.num_rows
    cols: dict[str, pa.ChunkedArray | pa.Array] = {ROW_ID: row_ids}
    select = [ROW_ID]
    for j, name in enumerate(lookup.spine_key_columns):
        cols[f"__k{j}"] = base.column(name)
        select.append(f"{_as_key(f'__k{j}', base.schema.field(name).type)} as __k{j}")
    if lookup.as_of:
        cols["__t"] = base.column(lookup.spine_timestamp)
        select.append(f"{_as_time('__t', base.schema.field(lookup.spine_timestamp).type)} as __t")
    con.register("__lakeloom_spine", pa.table(cols))
    parts = max(1, math.ceil(n / PARTITION_ROWS))
    key_list = ", ".join(f"__k{j}" for j in range(len(lookup.spine_key_columns)))
    try:
        if parts == 1:
            spine_sql = f"select {', '.join(select)} from __lakeloom_spine"
            query = _lookup_query(lookup, expr, schema, spine_sql, key_list, 1, 0)
            joined = con.sql(
                f"select * exclude ({ROW_ID}) from ({query}) order by {ROW_ID}"
            ).to_arrow_table()
        else:
            joined = _gathered(con, lookup, expr, schema, select, key_list, parts, n)
    finally:
        con.unregister("__lakeloom_spine")
    hit = joined.column("__h") if "__h" in joined.column_names else None
    columns = []
    for j, (feature, name) in enumerate(zip(lookup.features, lookup.outputs, strict=True)):
        column = joined.column(f"__o{j}")
        typ = schema.field(feature).type
        if column.type != typ:
            column = column.cast(typ)
        if hit is not None:
            default = lookup.default_values.get(name)
            column = pc.if_else(
                pc.fill_null(hit, False), column, _scalar(default, typ, name, lookup)
            )
        columns.append(column)
    return columns


def _gathered(
    con: duckdb.DuckDBPyConnection,
    lookup: PointInTimeLookup,
    expr: str,
    schema: pa.Schema,
    select: list[str],
    key_list: str,
    parts: int,
    n: int,
) -> pa.Table:
    """The lookup joined partition by partition, put back in spine order as rows stream in."""
    gather: _Gather | None = None
    # Batches are put in place on a second thread while DuckDB makes the next one.
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending: Future[None] | None = None
        for p in range(parts):
            spine_sql = (
                f"select * from (select {', '.join(select)} from __lakeloom_spine) "
                f"where hash({key_list}) % {parts} = {p}"
            )
            query = _lookup_query(lookup, expr, schema, spine_sql, key_list, parts, p)
            reader = con.sql(query).to_arrow_reader(_BATCH_ROWS)
            gather = gather or _Gather(reader.schema, n)
            for batch in reader:
                if pending is not None:
                    pending.result()
                pending = worker.submit(gather.add, batch)
        if pending is not None:
            pending.result()
    assert gather is not None
    return gather.result()


_BATCH_ROWS = 1 << 17


def _fixed_width(t: pa.DataType) -> pa.DataType | None:
    """The integer type holding ``t``'s values when they can be scattered with numpy."""
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return t
    if pa.types.is_timestamp(t) or pa.types.is_date64(t) or pa.types.is_duration(t):
        return pa.int64()
    if pa.types.is_date32(t):
        return pa.int32()
    return None


class _Gather:
    """Puts streamed result rows back in spine order as they arrive (by their row ids).

    Fixed-width columns are scattered into preallocated numpy arrays, so memory holds the
    result once plus one batch, never the whole result twice; other columns (strings,
    nested) are kept and reordered at the end with one gather.
    """

    def __init__(self, schema: pa.Schema, n: int) -> None:
        self.schema = schema.remove(schema.get_field_index(ROW_ID))
        self.n = n
        self.values: dict[str, Any] = {}
        self.valid: dict[str, Any] = {}
        self.kept: dict[str, list[pa.Array]] = {}
        self.rows: list[Any] = []
        for f in self.schema:
            storage = _fixed_width(f.type)
            if storage is None:
                self.kept[f.name] = []
            else:
                self.values[f.name] = np.zeros(n, dtype=storage.to_pandas_dtype())

    def add(self, batch: pa.RecordBatch) -> None:
        rows = batch.column(ROW_ID).to_numpy()
        if self.kept:
            self.rows.append(rows)
        for f in self.schema:
            column = batch.column(f.name)
            if f.name in self.kept:
                self.kept[f.name].append(column)
                continue
            storage = _fixed_width(f.type)
            assert storage is not None
            data = column if storage == f.type else column.view(storage)
            if column.null_count:
                if f.name not in self.valid:
                    self.valid[f.name] = np.ones(self.n, dtype=bool)
                self.valid[f.name][rows] = column.is_valid().to_numpy(zero_copy_only=False)
                if not pa.types.is_floating(storage):  # floats come out with NaN in place
                    data = pc.fill_null(data, pa.scalar(0, storage))
            elif f.name in self.valid:
                self.valid[f.name][rows] = True
            self.values[f.name][rows] = data.to_numpy(zero_copy_only=False)

    def result(self) -> pa.Table:
        columns: list[pa.Array | pa.ChunkedArray] = []
        order = None
        if self.kept:
            order = np.empty(self.n, dtype=np.int64)
            order[np.concatenate(self.rows) if self.rows else []] = np.arange(self.n)
        for f in self.schema:
            if f.name in self.kept:
                chunks = self.kept.pop(f.name)
                whole = pa.chunked_array(chunks, type=f.type)
                columns.append(whole.take(pa.array(order)))
                continue
            values = self.values.pop(f.name)
            valid = self.valid.pop(f.name, None)
            storage = _fixed_width(f.type)
            array = pa.array(values, type=storage, mask=None if valid is None else ~valid)
            columns.append(array if storage == f.type else array.view(f.type))
        return pa.table(columns, schema=self.schema)


def _scalar(value: object, typ: pa.DataType, name: str, lookup: PointInTimeLookup) -> pa.Scalar:
    try:
        return pa.scalar(value, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        raise InvalidArgument(
            f"default value {value!r} for {name!r} (table {lookup.table.name}) does not fit "
            f"its type {typ}"
        ) from None


def _lookup_query(
    lookup: PointInTimeLookup,
    expr: str,
    schema: pa.Schema,
    spine_sql: str,
    key_list: str,
    parts: int,
    p: int,
) -> str:
    """The query joining the spine rows of partition ``p`` with ``lookup``'s table."""
    ctes = [f"__s as ({spine_sql})"]
    select = [f"__s.{ROW_ID}"]
    name = "__r"
    keys = [f"{_as_key(_q(k), schema.field(k).type)} as __k{j}" for j, k in enumerate(lookup.keys)]
    feats = [f"{_q(f)} as __o{j}" for j, f in enumerate(lookup.features)]
    tb = [f"__o{lookup.features.index(c)}" for c in tiebreak_columns(schema, lookup.features)]
    tcol = lookup.timestamp
    proj = [*keys, *feats]
    if tcol is not None:
        proj.append(f"{_as_time(_q(tcol), schema.field(tcol).type)} as __t")
    if lookup.written_at is not None:
        w = lookup.written_at
        proj.append(f"{_as_time(_q(w), schema.field(w).type)} as __w")
    filters = [f"__k{j} is not null" for j in range(len(lookup.keys))]
    if parts > 1:
        filters.append(f"hash({key_list}) % {parts} = {p}")
    if lookup.as_of:
        filters.append("__t is not null")
    rows = f"select * from (select {', '.join(proj)} from {expr}) where {' and '.join(filters)}"
    on = " and ".join(f"__s.__k{j} = {name}.__k{j}" for j in range(len(lookup.keys)))
    hit_needed = lookup.lookback is not None or bool(lookup.default_values)
    outs = [f"{name}.__o{j}" for j in range(len(lookup.features))]
    if lookup.as_of and lookup.written_at is None:
        if not lookup.unique:
            part_by = ", ".join([*(f"__k{j}" for j in range(len(lookup.keys))), "__t"])
            if tb:
                rows = (
                    f"select * from ({rows}) qualify row_number() over "
                    f"(partition by {part_by} order by {_order(tb)}) = 1"
                )
        ctes.append(f"{name} as ({rows})")
        join = f"asof left join {name} on {on} and __s.__t >= {name}.__t"
        hit = f"({name}.__t is not null)"
        if lookup.lookback is not None:
            micros = int(lookup.lookback.total_seconds() * 1_000_000)
            hit = f"({name}.__t >= __s.__t - to_microseconds({micros}))"
    elif lookup.as_of:
        # The cutoff depends on each spine row's time: a range join, then the best row.
        cond = [on.replace("__s.", "s."), "r.__t <= s.__t", "r.__w <= s.__t"]
        if lookup.lookback is not None:
            micros = int(lookup.lookback.total_seconds() * 1_000_000)
            cond.append(f"r.__t >= s.__t - to_microseconds({micros})")
        cond = [c.replace(f"{name}.", "r.") for c in cond]
        best = _order(["r.__t", *(f"r.{c}" for c in tb)])
        ctes.append(
            f"{name} as (select * from (select s.{ROW_ID}, r.*, row_number() over "
            f"(partition by s.{ROW_ID} order by {best}) as __n from __s s join ({rows}) r "
            f"on {' and '.join(cond)}) where __n = 1)"
        )
        join = f"left join {name} on __s.{ROW_ID} = {name}.{ROW_ID}"
        hit = f"({name}.{ROW_ID} is not null)"
    else:
        latest = (["__t"] if tcol is not None else []) + tb
        if latest or not lookup.unique:
            part_by = ", ".join(f"__k{j}" for j in range(len(lookup.keys)))
            window = f"partition by {part_by}"
            if latest:
                window += f" order by {_order(latest)}"
            rows = f"select * from ({rows}) qualify row_number() over ({window}) = 1"
        ctes.append(f"{name} as (select *, true as __hit from ({rows}))")
        join = f"left join {name} on {on}"
        hit = f"({name}.__hit is not null)"
    select += outs
    if hit_needed:
        select.append(f"{hit} as __h")
    return f"with {', '.join(ctes)} select {', '.join(select)} from __s {join}"
