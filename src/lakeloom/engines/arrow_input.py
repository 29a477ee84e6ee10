"""Bring user data into Arrow and into the shape of a Delta table.

Inputs may be pandas, polars, a ``pyarrow.Table``, a ``RecordBatchReader`` (streamed, never
materialised) or anything exporting the Arrow C stream. Types Delta cannot store are mapped to
ones it can (unsigned to signed, dictionaries decoded, naive timestamps taken as UTC, all
timestamps at microseconds); data written to an existing table is conformed to its schema
with an error naming the column and both types when that is impossible.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from lakeloom.errors import InvalidArgument, SchemaMismatch

__all__ = ["conform", "delta_schema", "to_arrow_input"]

ArrowInput: TypeAlias = "pa.Table | pa.RecordBatchReader"


def to_arrow_input(data: Any) -> ArrowInput:
    """Convert a supported input to a ``pyarrow.Table`` or ``RecordBatchReader``."""
    if isinstance(data, pa.Table | pa.RecordBatchReader):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    if module.startswith("polars"):
        import polars as pl

        if isinstance(data, pl.LazyFrame):
            data = data.collect()
        if isinstance(data, pl.DataFrame):
            return data.to_arrow()
    if module.startswith("pyspark"):
        to_arrow = getattr(data, "toArrow", None)
        if to_arrow is not None:
            return to_arrow()  # type: ignore[no-any-return]
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return pa.Table.from_pylist(data)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(data)
    raise InvalidArgument(
        f"cannot use data of type {type(data).__name__}; pass a pandas or polars DataFrame, "
        "a pyarrow Table or RecordBatchReader, or a Spark DataFrame"
    )


def _delta_type(t: pa.DataType, column: str) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _delta_type(t.value_type, column)
    if pa.types.is_unsigned_integer(t):
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.int64()}[t.bit_width]
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_null(t):
        raise SchemaMismatch(
            f"column {column!r} has no type (every value is null); cast it to a concrete type"
        )
    if pa.types.is_time(t) or pa.types.is_duration(t) or pa.types.is_interval(t):
        raise SchemaMismatch(
            f"column {column!r} has type {t}, which Delta tables cannot store; "
            "convert it to a number or a string"
        )
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field("element", _delta_type(t.value_type, column)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _delta_type(f.type, column)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_delta_type(t.key_type, column), _delta_type(t.item_type, column))
    return t


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """The schema ``schema`` becomes once stored in Delta (see the module docstring)."""
    names = [f.name for f in schema]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SchemaMismatch(f"column names must be unique; repeated: {', '.join(dupes)}")
    return pa.schema([pa.field(f.name, _delta_type(f.type, f.name), True) for f in schema])


def _kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_date(t):
        return "date"
    return str(t)


_COMPATIBLE = {
    ("int", "int"),
    ("int", "float"),
    ("float", "float"),
    ("int", "decimal"),
    ("decimal", "decimal"),
    ("string", "string"),
    ("timestamp", "timestamp"),
    ("date", "date"),
    ("date", "timestamp"),
}


def _target_schema(
    source: pa.Schema, table: pa.Schema | None, name: str, allow_new_columns: bool
) -> pa.Schema:
    src = delta_schema(source)
    if table is None:
        return src
    fields: list[pa.Field] = []
    for f in table:
        idx = src.get_field_index(f.name)
        if idx < 0:
            fields.append(f)
            continue
        have = src.field(idx).type
        if have != f.type and (_kind(have), _kind(f.type)) not in _COMPATIBLE:
            raise SchemaMismatch(
                f"column {f.name!r} of table {name} has type {f.type}, the data has {have}; "
                "cast the data, or overwrite the table with schema_mode='overwrite'"
            )
        fields.append(f)
    extra = [f for f in src if table.get_field_index(f.name) < 0]
    if extra and not allow_new_columns:
        raise SchemaMismatch(
            f"column(s) {', '.join(repr(f.name) for f in extra)} not in table {name} "
            f"(its columns: {', '.join(table.names)}); pass schema_mode='merge' to add them"
        )
    return pa.schema(fields + extra)


def _cast_column(
    col: pa.Array | pa.ChunkedArray, f: pa.Field, name: str
) -> pa.Array | pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_timestamp(col.type) and col.type.tz is None:
        col = pc.assume_timezone(col, "UTC")
    if col.type != f.type:
        try:
            col = col.cast(f.type, safe=not pa.types.is_timestamp(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaMismatch(
                f"column {f.name!r} of table {name} has type {f.type}; data of type "
                f"{col.type} does not fit it: {str(exc).splitlines()[0]}"
            ) from None
    return col


def _cast_batch(batch: pa.RecordBatch, target: pa.Schema, name: str) -> pa.RecordBatch:
    arrays = []
    for f in target:
        idx = batch.schema.get_field_index(f.name)
        if idx < 0:
            arrays.append(pa.nulls(batch.num_rows, f.type))
        else:
            arrays.append(_cast_column(batch.column(idx), f, name))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


def _cast_table(table: pa.Table, target: pa.Schema, name: str) -> pa.Table:
    columns: list[pa.Array | pa.ChunkedArray] = []
    for f in target:
        idx = table.schema.get_field_index(f.name)
        if idx < 0:
            columns.append(pa.nulls(table.num_rows, f.type))
        else:
            columns.append(_cast_column(table.column(idx), f, name))
    return pa.Table.from_arrays(columns, schema=target)


def conform(
    data: ArrowInput,
    table_schema: pa.Schema | None,
    name: str,
    *,
    allow_new_columns: bool = False,
) -> ArrowInput:
    """Cast ``data`` to the schema it gets in table ``name`` (``None``: a new table).

    Data that already has that schema is returned as it is (no copy, no per-batch work). A
    reader stays a reader: batches are cast as they stream through.
    """
    target = _target_schema(data.schema, table_schema, name, allow_new_columns)
    if data.schema.equals(target, check_metadata=False):
        return data
    if isinstance(data, pa.Table):
        return _cast_table(data, target, name)

    reader = data

    def stream() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield _cast_batch(batch, target, name)

    return pa.RecordBatchReader.from_batches(target, stream())
