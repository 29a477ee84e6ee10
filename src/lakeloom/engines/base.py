"""The engine contract: every operation whose cost grows with the data goes through it.

Two implementations pass one contract suite (``tests/engines/test_contract.py``):
:class:`~lakeloom.engines.local.LocalEngine` (DuckDB + Arrow + delta-rs) and
:class:`~lakeloom.engines.spark.SparkEngine` (PySpark). Core code only sees :class:`Engine`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

__all__ = [
    "Catalog",
    "Engine",
    "Frame",
    "SchemaMode",
    "TableRef",
    "WriteMode",
]

#: Arrow (a ``pyarrow.Table`` or ``RecordBatchReader``) on the local engine, a Spark
#: DataFrame inside the Spark engine. Converted once, at the SDK's edge.
Frame = Any
WriteMode = Literal["append", "overwrite"]
SchemaMode = Literal["merge", "overwrite"]


@dataclass(frozen=True)
class TableRef:
    """A resolved lakehouse table: its ``schema.table`` name and where its Delta log lives."""

    name: str
    uri: str
    storage_options: Mapping[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        """The schema part of the name (``raw`` in ``raw.customers``)."""
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        """The table part of the name (``customers`` in ``raw.customers``)."""
        return self.name.split(".", 1)[1]


@runtime_checkable
class Catalog(Protocol):
    """Resolves lakehouse names to tables; the lakehouse implements it for the engines."""

    def resolve(self, name: str) -> TableRef:
        """The table called ``name``; raises ``TableNotFound`` when there is none."""
        ...

    def table_names(self) -> list[str]:
        """Every existing table's ``schema.table`` name, sorted."""
        ...


@runtime_checkable
class Engine(Protocol):
    """What lakeloom needs from a compute engine. Keep it this small."""

    #: Short name used in settings and messages ("local", "spark").
    name: str

    def read(
        self,
        table: TableRef,
        *,
        version: int | None = None,
        timestamp: datetime | None = None,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> Frame:
        """The table's rows at a version or timestamp (default: latest).

        ``filter`` is a SQL boolean expression over the table's columns.
        """
        ...

    def write(
        self,
        table: TableRef,
        data: Frame,
        *,
        mode: WriteMode,
        schema_mode: SchemaMode | None = None,
        partition_by: Sequence[str] | None = None,
    ) -> int:
        """Append or overwrite; creates the table when missing. Returns the new version."""
        ...

    def merge(self, table: TableRef, data: Frame, *, keys: Sequence[str]) -> int:
        """Upsert ``data`` on ``keys``; creates the table when missing. Returns the new version."""
        ...

    def sql(self, query: str, catalog: Catalog) -> Frame:
        """Run SQL in which ``schema.table`` names are lakehouse tables at their latest version."""
        ...

    def from_input(self, data: Any) -> Frame:
        """Accept pandas, polars, Arrow (Table or RecordBatchReader) or the engine's own frame."""
        ...

    def to_arrow(self, frame: Frame) -> pa.Table:
        """Collect a frame into one Arrow table (for small results and the SDK's edge)."""
        ...

    def close(self) -> None:
        """Release what the engine holds (sessions, connections). Idempotent."""
        ...
