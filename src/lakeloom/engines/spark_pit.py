"""The Spark engine's point-in-time join and latest row per key, distributed.

An as-of lookup unions the spine with the table's rows and runs one window per key, ordered
by time with the table's rows before spine rows of the same time: each spine row takes the
last table row seen so far (``last(..., ignorenulls)``). This is a sort per key, with no
range join and nothing collected to the driver. Among table rows of equal time, the window
also orders by the features (ascending, nulls first), so the last one is the row the
contract names. A write-time cutoff depends on each spine row's time, which a running window
cannot express: it is a range join on the key, then the best row per spine row. Lookups
without a time join the latest row per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeloom.engines.base import PointInTimeLookup, TableRef
from lakeloom.engines.delta_log import arrow_schema, open_delta
from lakeloom.engines.pit_plan import (
    INTERNAL_PREFIX,
    check_latest,
    check_lookups,
    key_kind,
    tiebreak_columns,
)
from lakeloom.engines.spark_types import arrow_schema_of, col, spark_type
from lakeloom.errors import InvalidArgument

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from lakeloom.engines.spark import SparkEngine

__all__ = ["latest_per_key", "point_in_time_join"]

_P = INTERNAL_PREFIX


def _desc(c: Column) -> Column:
    return c.desc_nulls_last()


def _key(c: Column, t: pa.DataType) -> Column:
    kind = key_kind(t)
    if kind == "integer":
        return c.cast("long")
    if kind == "string":
        return c.cast("string")
    return c


def _time(c: Column, t: pa.DataType) -> Column:
    if pa.types.is_timestamp(t) and t.tz is not None:
        return c
    return c.cast("timestamp")


def _table_schema(table: TableRef, version: int | None) -> pa.Schema:
    return arrow_schema(open_delta(table, version=version))


# -- latest row per key ----------------------------------------------------------------
def latest_per_key(
    engine: SparkEngine,
    table: TableRef,
    keys: Sequence[str],
    ts: str | None,
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
) -> DataFrame:
    """See :meth:`lakeloom.engines.base.Engine.latest_per_key`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = list(keys)
    schema = _table_schema(table, version)
    wanted = list(columns) if columns is not None else schema.names
    check_latest(table.name, schema, keys, ts, wanted)
    chosen = set(keys) | {ts} | set(wanted)
    out = [c for c in schema.names if c in chosen]
    df = engine.read(table, version=version).select(*[col(c) for c in out])
    order = [_desc(col(ts))] if ts else []
    order += [_desc(col(c)) for c in tiebreak_columns(schema, out) if c not in keys and c != ts]
    window = Window.partitionBy(*[col(k) for k in keys])
    window = window.orderBy(*order) if order else window.orderBy(F.lit(1))
    for k in keys:
        df = df.where(col(k).isNotNull())
    return (
        df.withColumn(f"{_P}n", F.row_number().over(window))
        .where(F.col(f"{_P}n") == 1)
        .drop(f"{_P}n")
    )


# -- point-in-time join ----------------------------------------------------------------
def point_in_time_join(
    engine: SparkEngine, spine: Any, lookups: Sequence[PointInTimeLookup]
) -> DataFrame:
    """See :meth:`lakeloom.engines.base.Engine.point_in_time_join`."""
    frame = engine.from_input(spine)
    spine_schema = arrow_schema_of(frame)
    schemas = [_table_schema(lk.table, lk.version) for lk in lookups]
    check_lookups(spine_schema, lookups, schemas)
    names = list(frame.columns)
    for i, (lookup, schema) in enumerate(zip(lookups, schemas, strict=True)):
        rows = engine.read(lookup.table, version=lookup.version)
        frame = _join_one(frame, spine_schema, rows, schema, lookup, i)
        names += list(lookup.outputs)
    return frame.select(*[col(c) for c in names])


def _join_one(
    spine: DataFrame,
    spine_schema: pa.Schema,
    rows: DataFrame,
    schema: pa.Schema,
    lookup: PointInTimeLookup,
    i: int,
) -> DataFrame:
    from pyspark.sql import functions as F

    keys = [f"{_P}k{j}" for j in range(len(lookup.keys))]
    value = f"{_P}v{i}"
    tb = tiebreak_columns(schema, lookup.features) if not lookup.unique else []
    right = [
        _key(col(k), schema.field(k).type).alias(n) for k, n in zip(lookup.keys, keys, strict=True)
    ]
    fields = [col(f).alias(f"f{j}") for j, f in enumerate(lookup.features)]
    if lookup.timestamp is not None:
        t = _time(col(lookup.timestamp), schema.field(lookup.timestamp).type)
        right.append(t.alias(f"{_P}t"))
        fields.append(t.alias("t"))
    if lookup.written_at is not None:
        w = lookup.written_at
        right.append(_time(col(w), schema.field(w).type).alias(f"{_P}w"))
    right += [col(c).alias(f"{_P}o{j}") for j, c in enumerate(tb)]
    right.append(F.struct(*fields).alias(value))
    table = rows.select(*right)
    for k in keys:
        table = table.where(F.col(k).isNotNull())
    left = spine
    for k, sk in zip(keys, lookup.spine_key_columns, strict=True):
        left = left.withColumn(k, _key(col(sk), spine_schema.field(sk).type))
    if lookup.as_of:
        assert lookup.spine_timestamp is not None
        st = lookup.spine_timestamp
        left = left.withColumn(f"{_P}st", _time(col(st), spine_schema.field(st).type))
        table = table.where(F.col(f"{_P}t").isNotNull())
        if lookup.written_at is None:
            joined = _as_of_window(left, table, keys, value, len(tb))
        else:
            joined = _as_of_cutoff(left, table, keys, value, lookup, len(tb))
        hit = F.col(value).isNotNull()
        if lookup.lookback is not None:
            micros = int(lookup.lookback.total_seconds() * 1_000_000)
            hit = hit & (
                F.unix_micros(F.col(f"{value}.t")) >= F.unix_micros(F.col(f"{_P}st")) - micros
            )
    else:
        joined = _latest_join(left, table, keys, value, lookup, len(tb))
        hit = F.col(value).isNotNull()
    outputs = []
    for j, (feature, name) in enumerate(zip(lookup.features, lookup.outputs, strict=True)):
        got = F.col(f"{value}.f{j}")
        typ = schema.field(feature).type
        if lookup.lookback is not None or name in lookup.default_values:
            default = _default(lookup, name, typ)
            got = F.when(hit, got).otherwise(default)
        outputs.append(got.alias(name))
    return joined.select(*[col(c) for c in spine.columns], *outputs)


def _default(lookup: PointInTimeLookup, name: str, typ: pa.DataType) -> Column:
    from pyspark.sql import functions as F

    value = lookup.default_values.get(name)
    try:
        pa.scalar(value, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        raise InvalidArgument(
            f"default value {value!r} for {name!r} (table {lookup.table.name}) does not fit "
            f"its type {typ}"
        ) from None
    return F.lit(value).cast(spark_type(typ))


def _as_of_window(
    left: DataFrame, table: DataFrame, keys: list[str], value: str, tiebreaks: int
) -> DataFrame:
    """The last table row at or before each spine row's time, by one window per key."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    side = f"{_P}side"
    spine_rows = left.withColumn(f"{_P}t", F.col(f"{_P}st")).withColumn(side, F.lit(1))
    table_rows = table.withColumn(side, F.lit(0))
    union = spine_rows.unionByName(table_rows, allowMissingColumns=True)
    order = [F.col(f"{_P}t").asc_nulls_first(), F.col(side).asc()]
    order += [F.col(f"{_P}o{j}").asc_nulls_first() for j in range(tiebreaks)]
    window = (
        Window.partitionBy(*[F.col(k) for k in keys])
        .orderBy(*order)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    return union.withColumn(value, F.last(F.col(value), ignorenulls=True).over(window)).where(
        F.col(side) == 1
    )


def _as_of_cutoff(
    left: DataFrame,
    table: DataFrame,
    keys: list[str],
    value: str,
    lookup: PointInTimeLookup,
    tiebreaks: int,
) -> DataFrame:
    """As :func:`_as_of_window`, among the rows written by each spine row's time."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    row = f"{_P}row"
    left = left.withColumn(row, F.monotonically_increasing_id())
    s, r = left.alias("s"), table.alias("r")
    cond = [F.col(f"s.{k}") == F.col(f"r.{k}") for k in keys]
    cond += [
        F.col(f"r.{_P}t") <= F.col(f"s.{_P}st"),
        F.col(f"r.{_P}w") <= F.col(f"s.{_P}st"),
    ]
    if lookup.lookback is not None:
        micros = int(lookup.lookback.total_seconds() * 1_000_000)
        cond.append(F.unix_micros(F.col(f"r.{_P}t")) >= F.unix_micros(F.col(f"s.{_P}st")) - micros)
    on = cond[0]
    for c in cond[1:]:
        on = on & c
    joined = s.join(r, on, "left").select(
        "s.*",
        F.col(f"r.{_P}t").alias(f"{_P}mt"),
        *[F.col(f"r.{_P}o{j}").alias(f"{_P}mo{j}") for j in range(tiebreaks)],
        F.col(f"r.{value}").alias(value),
    )
    order = [F.col(f"{_P}mt").desc_nulls_last()]
    order += [F.col(f"{_P}mo{j}").desc_nulls_last() for j in range(tiebreaks)]
    window = Window.partitionBy(F.col(row)).orderBy(*order)
    return (
        joined.withColumn(f"{_P}n", F.row_number().over(window))
        .where(F.col(f"{_P}n") == 1)
        .drop(f"{_P}n", row)
    )


def _latest_join(
    left: DataFrame,
    table: DataFrame,
    keys: list[str],
    value: str,
    lookup: PointInTimeLookup,
    tiebreaks: int,
) -> DataFrame:
    """Each spine row with its key's latest table row."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = [F.col(f"{_P}t").desc_nulls_last()] if lookup.timestamp is not None else []
    order += [F.col(f"{_P}o{j}").desc_nulls_last() for j in range(tiebreaks)]
    if order or not lookup.unique:
        window = Window.partitionBy(*[F.col(k) for k in keys]).orderBy(*(order or [F.lit(1)]))
        table = (
            table.withColumn(f"{_P}n", F.row_number().over(window))
            .where(F.col(f"{_P}n") == 1)
            .drop(f"{_P}n")
        )
    latest = table.select(*keys, value)
    return left.join(latest, on=keys, how="left")
