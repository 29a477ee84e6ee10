"""Profiles on the Spark engine: the same aggregate queries as the local engine, in Spark SQL.

Only the aggregates (one row per group, the top categories) reach the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeloom.engines.base import TableRef
from lakeloom.engines.profile_spec import ProfileSpec, profile_plan, profile_rows
from lakeloom.errors import InvalidArgument

if TYPE_CHECKING:
    from lakeloom.engines.spark import SparkEngine

__all__ = ["profile"]


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def profile(engine: SparkEngine, data: Any, spec: ProfileSpec) -> pa.Table:
    """The profile of ``data`` (a frame or a :class:`TableRef`) as ``spec`` asks."""
    if isinstance(data, TableRef):
        df = engine.read(data, version=spec.version)
        where = f"table {data.name}"
    else:
        df = engine.from_input(data)
        where = "the data"
    spec.check_columns(list(df.columns), where)
    plan = profile_plan(spec, "{source}", _quote)
    results = []
    for query in plan.queries:
        try:
            frame = engine.spark.sql(query, None, source=df)
            results.append(engine.to_arrow(frame))
        except Exception as exc:
            if not type(exc).__module__.startswith(("pyspark", "py4j")):
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InvalidArgument(f"cannot profile {where}: {first}") from None
    return profile_rows(spec, plan, results)
