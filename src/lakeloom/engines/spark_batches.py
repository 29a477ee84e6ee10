"""The Spark engine's ``map_batches``: ``mapInArrow`` on the executors, nothing collected.

The function travels to the executors with the task (cloudpickle), so whatever it holds
(a model's files, say) is shipped once per task and should load lazily, once per Python
worker. Result batches are cast to the declared schema there, as the local engine does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeloom.engines.base import BatchFn
from lakeloom.engines.local_batches import conform_batch, plain_types
from lakeloom.engines.spark_types import spark_schema

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["map_batches"]


def map_batches(df: DataFrame, fn: BatchFn, schema: pa.Schema) -> DataFrame:
    """``fn`` over ``df``'s Arrow batches on the executors (see :meth:`Engine.map_batches`)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield conform_batch(fn(plain_types(batch)), schema)

    out: Any = df.mapInArrow(run, spark_schema(schema))
    return out  # type: ignore[no-any-return]
