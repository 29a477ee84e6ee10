"""Types between Spark and Arrow, with the rules the local engine applies to Arrow data.

Spark schemas are converted to Arrow to run the same checks as
:func:`lakeloom.engines.arrow_input.conform` (same rules, same messages); the casts then run
in Spark. Frames collected to Arrow are typed as the local engine types them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeloom.engines.arrow_input import _target_schema
from lakeloom.errors import SchemaMismatch

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType, StructType

__all__ = [
    "arrow_schema_of",
    "col",
    "conform_frame",
    "is_dataframe",
    "spark_schema",
    "spark_type",
    "to_local_arrow",
]


def is_dataframe(data: Any) -> bool:
    """Whether ``data`` is a Spark DataFrame (classic or Spark Connect)."""
    return type(data).__module__.startswith("pyspark.sql") and hasattr(data, "toArrow")


def spark_schema(schema: pa.Schema) -> StructType:
    """The Spark schema of an Arrow schema (naive timestamps stay ``TIMESTAMP_NTZ``)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema, prefer_timestamp_ntz=True)


def spark_type(t: pa.DataType) -> DataType:
    """The Spark type of an Arrow type (naive timestamps stay ``TIMESTAMP_NTZ``)."""
    from pyspark.sql.pandas.types import from_arrow_type

    return from_arrow_type(t, prefer_timestamp_ntz=True)


def arrow_schema_of(df: DataFrame) -> pa.Schema:
    """The Arrow schema of a Spark DataFrame's rows."""
    from pyspark.sql.pandas.types import to_arrow_schema

    try:
        return to_arrow_schema(df.schema, timezone="UTC")
    except Exception as exc:
        raise SchemaMismatch(
            f"the data has a column type Delta tables cannot store ({exc}); "
            "cast it to a number, string, date, timestamp or a list/struct/map of those"
        ) from None


def col(name: str) -> Column:
    """A column by its exact name (quoted: dots and spaces are not paths)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def conform_frame(
    df: DataFrame, table_schema: pa.Schema | None, name: str, *, allow_new_columns: bool
) -> tuple[DataFrame, pa.Schema]:
    """Cast ``df`` to the schema it gets in table ``name``, with the local engine's rules.

    Missing columns become nulls, new columns need ``allow_new_columns``, incompatible types
    raise :class:`SchemaMismatch` naming the column and both types (the checks are those of
    :func:`lakeloom.engines.arrow_input.conform`, run on the schemas; the casts run in Spark).
    """
    from pyspark.sql import functions as F

    target = _target_schema(arrow_schema_of(df), table_schema, name, allow_new_columns)
    present = set(df.columns)
    cols = [
        (col(f.name) if f.name in present else F.lit(None)).cast(spark_type(f.type)).alias(f.name)
        for f in target
    ]
    return df.select(*cols), target


def _normalise(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field("element", _normalise(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _normalise(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_normalise(t.key_type), _normalise(t.item_type))
    return t


def to_local_arrow(df: DataFrame) -> pa.Table:
    """Collect ``df`` as Arrow typed as the local engine types it.

    Spark's large strings become strings and every field is nullable (Spark marks
    aggregates and literals non-null; Arrow data read from Delta tables never is).
    """
    table = df.toArrow()
    schema = pa.schema([pa.field(f.name, _normalise(f.type), True) for f in table.schema])
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(None)
    return table.cast(schema)
