"""The engine contract: every operation whose cost grows with the data goes through it.

Two implementations pass one contract suite (``tests/engines/test_contract.py``):
:class:`~lakeloom.engines.local.LocalEngine` (DuckDB + Arrow + delta-rs) and
:class:`~lakeloom.engines.spark.SparkEngine` (PySpark). Core code only sees :class:`Engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

from lakeloom.engines.profile_spec import ProfileSpec

__all__ = [
    "BatchFn",
    "Catalog",
    "Engine",
    "Frame",
    "PointInTimeLookup",
    "ProfileSpec",
    "RowFunction",
    "SchemaMode",
    "SqlFunction",
    "TableRef",
    "WriteMode",
]

#: Arrow (a ``pyarrow.Table`` or ``RecordBatchReader``) on the local engine, a Spark
#: DataFrame inside the Spark engine. Converted once, at the SDK's edge.
Frame = Any
WriteMode = Literal["append", "overwrite"]
SchemaMode = Literal["merge", "overwrite"]
#: What :meth:`Engine.map_batches` applies: one Arrow batch in, one batch out (any row count).
#: It must pickle (cloudpickle) for Spark, which runs it on the executors.
BatchFn = Callable[[pa.RecordBatch], pa.RecordBatch]


@dataclass(frozen=True)
class RowFunction:
    """A bound :class:`SqlFunction`: Arrow rows in, one value per row out.

    ``fn`` gets a ``pyarrow.Table`` of the call's row arguments (their column names and
    values) and returns an array of ``return_type`` with one value per row. It must pickle
    (cloudpickle) for Spark, which calls it on the executors.
    """

    fn: Callable[[pa.Table], pa.Array]
    return_type: pa.DataType


@dataclass(frozen=True)
class SqlFunction:
    """A function that layers above the engines make callable from SQL.

    SQL calls it as ``name('key', *)`` or ``name('key', col1, col2, ...)``: the first argument
    is a string literal, which ``bind`` turns into a :class:`RowFunction` once per query; the
    others are the row's columns (``*``: every column of the ``FROM`` clause), passed by name.
    lakeloom's ``predict('churn_model@production', *)`` is one.
    """

    name: str
    bind: Callable[[str], RowFunction]


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


@dataclass(frozen=True)
class PointInTimeLookup:
    """One table whose rows :meth:`Engine.point_in_time_join` attaches to each spine row.

    For a spine row, the *candidates* are the table's rows (at ``version``) whose ``keys``
    equal the row's ``spine_keys`` (no key column null) and, when both ``timestamp`` and
    ``spine_timestamp`` are set, whose event time is at or before the spine row's time
    (``>= time - lookback`` too when ``lookback`` is set, both bounds inclusive; rows with a
    null event time are never candidates). With ``written_at`` set (the cutoff), rows whose
    write time in that column is after the spine row's time, or null, are no candidates
    either. Without a spine time the candidates are all of the key's rows ("latest").

    The match is the candidate with the greatest event time; among candidates with the same
    event time (or all candidates, without a time) the one whose ``features`` sort last, in
    column order, ascending, nulls first (Spark's and DuckDB's order: NaN above every
    number, strings by UTF-8 bytes). A spine row without a match gets ``default_values``
    (by output name) or nulls; a matched row's null values stay null.
    """

    #: The table, and the version to read (None: the latest).
    table: TableRef
    #: The table's key columns.
    keys: tuple[str, ...]
    #: The table's columns to fetch.
    features: tuple[str, ...]
    #: The spine's columns matched with ``keys``, in the same order (default: same names).
    spine_keys: tuple[str, ...] = ()
    #: The table's event-time column; None: a table without time (latest row per key).
    timestamp: str | None = None
    #: The spine's time column; None: take the latest row per key, whatever its time.
    spine_timestamp: str | None = None
    #: Names of the fetched columns in the result (default: ``features``).
    output_names: tuple[str, ...] = ()
    version: int | None = None
    #: Only rows at most this much older than the spine time match.
    lookback: timedelta | None = None
    #: Values for spine rows without a match, by output name.
    default_values: Mapping[str, Any] = field(default_factory=dict)
    #: The table's write-time column: with it, rows written after the spine time are ignored.
    written_at: str | None = None
    #: The caller vouches that no two rows share keys and event time (the feature store
    #: keeps its tables so on every write): the engine then skips its tie-break pass.
    unique: bool = False

    @property
    def spine_key_columns(self) -> tuple[str, ...]:
        """The spine's key columns (``spine_keys``, else the table's key names)."""
        return self.spine_keys or self.keys

    @property
    def outputs(self) -> tuple[str, ...]:
        """The result's names for ``features``."""
        return self.output_names or self.features

    @property
    def as_of(self) -> bool:
        """Whether the match depends on the spine row's time."""
        return self.timestamp is not None and self.spine_timestamp is not None


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

    def sql(self, query: str, catalog: Catalog, *, functions: Sequence[SqlFunction] = ()) -> Frame:
        """Run SQL in which ``schema.table`` names are lakehouse tables at their latest version.

        ``functions`` become callable in the query (see :class:`SqlFunction`).
        """
        ...

    def latest_per_key(
        self,
        table: TableRef,
        keys: Sequence[str],
        ts: str | None,
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> Frame:
        """One row per distinct value of ``keys``: the row with the greatest ``ts``.

        ``table`` is read at ``version`` (default: the latest). The result has the table's
        columns in table order, restricted to ``keys``, ``ts`` and ``columns`` when
        ``columns`` is given; its row order is not defined. Rows with a null in a key column
        are left out. A null ``ts`` counts as older than any time. Rows of one key with the
        same ``ts`` (or all of a key's rows when ``ts`` is None) are told apart by their
        returned values: the row whose values sort last, column by column in table order,
        ascending with nulls first, wins (as :class:`PointInTimeLookup` breaks ties).
        Unknown columns raise ``SchemaMismatch``.

        >>> engine.latest_per_key(ref, ["customer_id"], "ts")  # doctest: +SKIP
        """
        ...

    def point_in_time_join(self, spine: Frame, lookups: Sequence[PointInTimeLookup]) -> Frame:
        """``spine`` with each lookup's features as of each row's time (or the latest).

        Every spine row is one result row (duplicates stay separate rows), with the spine's
        columns first, in order, then each lookup's ``outputs`` in lookup order. The local
        engine keeps the spine's row order; Spark's order is not defined. See
        :class:`PointInTimeLookup` for which row matches. Raises ``SchemaMismatch`` for a
        missing column or key types that cannot be compared, ``InvalidArgument`` for a time
        column that is not a date or timestamp or an output name used twice.
        """
        ...

    def map_batches(self, data: Frame, fn: BatchFn, schema: pa.Schema) -> Frame:
        """``fn`` applied to every Arrow batch of ``data``: a frame of ``schema``, lazily.

        ``data`` is a frame, or a :class:`TableRef` to stream at its latest version. Batches
        stream: the local engine never holds the whole input (it reads ahead and
        computes on a bounded queue, in order) and returns a ``RecordBatchReader`` that can be
        read once; Spark runs ``fn`` on the executors (``mapInArrow``). ``fn``'s batches are
        cast to ``schema`` (same column names, in order); a batch that cannot be raises
        ``SchemaMismatch`` when the result is read.
        """
        ...

    def profile(self, data: Frame | TableRef, spec: ProfileSpec) -> pa.Table:
        """Aggregate statistics of ``data`` (a frame, or a table scanned in place).

        Counts, nulls, min/max/mean/std and counts below fixed edges for numeric columns,
        the top-k categories and the rest for categorical ones, per ``spec.group_by`` value:
        a small table of :data:`~lakeloom.engines.profile_spec.PROFILE_SCHEMA`, sorted, the
        same on every engine. Computed by the engine's aggregates: the rows are never
        collected. Unknown columns raise ``SchemaMismatch``.
        """
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
