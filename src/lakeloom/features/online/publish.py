"""Publishing: the latest row per key of a feature table, written to an online store.

``mode="snapshot"`` rebuilds: the latest row per key of the table (``Engine.latest_per_key`` at
the version read) goes into a fresh generation that readers switch to in one step once it is
complete, so keys deleted from the table disappear and the columns may change.

``mode="incremental"`` upserts, with newer-wins, the rows of the data files the table gained
since the Delta version the last publish recorded (:mod:`lakeloom.features.online.incremental`
explains how). It runs as a snapshot (the report says why) when the table was never
published, was published from another source, changed its columns, or when the recorded
version can no longer be read (its log was cleaned up). Deleted rows are not removed by an
incremental publish: publish a snapshot for that.

Writing is chunked and bounded in memory: Arrow batches of ``chunk_rows`` rows each on the
local engine. On Spark the work stays distributed: with Redis every executor writes its own
partitions (``mapInArrow``; only two counters come back to the driver); a SQLite file is
local to the driver (a cluster cannot reach it), so partitions are streamed to the driver one
at a time (``toLocalIterator``) as Arrow IPC chunks of ``chunk_rows`` rows.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal

import pyarrow as pa

from lakeloom.durations import parse_duration
from lakeloom.engines.base import Engine, Frame, TableRef
from lakeloom.engines.delta_log import arrow_schema, open_delta
from lakeloom.engines.spark_types import arrow_schema_of, is_dataframe
from lakeloom.errors import InvalidArgument, LakeloomError
from lakeloom.features.online.base import (
    Column,
    OnlineStore,
    OnlineTableInfo,
    OnlineTableSpec,
    PartitionWriter,
    PublishState,
    WriteCounts,
)
from lakeloom.features.online.codec import KEY_KINDS, TIMESTAMP_KINDS, arrow_kind, plain_type
from lakeloom.features.online.incremental import changed_rows
from lakeloom.lakehouse.names import parse_table_name

__all__ = ["PublishMode", "PublishReport", "build_spec", "publish"]

PublishMode = Literal["snapshot", "incremental"]
#: Rows per chunk written to the store (and per Arrow batch sent from Spark).
DEFAULT_CHUNK_ROWS = 10_000
_RESERVED_PREFIX = "_lakeloom_"


@dataclass(frozen=True)
class PublishReport:
    """What a publish did."""

    name: str
    #: What ran: "snapshot" or "incremental" (an incremental request may run as a snapshot).
    mode: str
    requested_mode: str
    #: Why a snapshot ran when incremental was asked for (None otherwise).
    reason: str | None
    source: str | None
    source_version: int | None
    previous_version: int | None
    #: Rows read from the source and sent to the store.
    rows_read: int
    #: Rows the store took (the others were older than what it held, or had a null key).
    rows_written: int
    generation: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (for ``--json``)."""
        return asdict(self)


def build_spec(
    name: str,
    schema: pa.Schema,
    *,
    primary_keys: Sequence[str],
    timestamp_key: str | None,
    features: Sequence[str] | None,
    ttl_seconds: float | None,
) -> OnlineTableSpec:
    """Check the columns to publish against the source's schema and describe their storage."""
    names = schema.names
    keys = list(primary_keys)
    if not keys:
        raise InvalidArgument("publishing needs at least one primary key column")

    def field(column: str, role: str) -> pa.Field:
        if column not in names:
            raise InvalidArgument(
                f"{role} {column!r} is not a column of the source; its columns: {', '.join(names)}"
            )
        return schema.field(column)

    if len(set(keys)) != len(keys):
        raise InvalidArgument(f"primary keys {keys} name a column twice")
    key_cols = []
    for k in keys:
        kind = arrow_kind(field(k, "primary key"))
        if kind not in KEY_KINDS:
            raise InvalidArgument(
                f"primary key {k!r} has type {schema.field(k).type}; online keys must be "
                "integers or strings"
            )
        key_cols.append(Column(k, kind))
    if timestamp_key is not None:
        kind = arrow_kind(field(timestamp_key, "timestamp key"))
        if kind not in TIMESTAMP_KINDS:
            raise InvalidArgument(
                f"timestamp key {timestamp_key!r} has type {schema.field(timestamp_key).type}; "
                "it must be a timestamp or a date"
            )
        if timestamp_key in keys:
            raise InvalidArgument(f"{timestamp_key!r} cannot be both a key and the timestamp key")
    if features is None:
        chosen = [n for n in names if n not in keys and n != timestamp_key]
    else:
        if isinstance(features, str):
            raise InvalidArgument(f"features must be a list of column names, got {features!r}")
        chosen = list(features)
        if len(set(chosen)) != len(chosen):
            raise InvalidArgument(f"features {chosen} name a column twice")
        for f in chosen:
            field(f, "feature")
            if f in keys:
                raise InvalidArgument(f"{f!r} is a primary key, not a feature")
    for f in chosen:
        if f.startswith(_RESERVED_PREFIX):
            raise InvalidArgument(
                f"feature {f!r} starts with {_RESERVED_PREFIX!r}, which the online store "
                "reserves; rename the column"
            )
    feature_cols = [Column(f, arrow_kind(schema.field(f))) for f in chosen]
    stored = pa.schema(
        [
            pa.field(c.name, plain_type(schema.field(c.name).type))
            for c in (*key_cols, *feature_cols)
        ]
    )
    return OnlineTableSpec(
        name=name,
        keys=tuple(key_cols),
        features=tuple(feature_cols),
        timestamp_key=timestamp_key,
        schema=stored,
        ttl_seconds=ttl_seconds,
    )


def _online_name(name: str) -> str:
    schema, table = parse_table_name(name)
    return f"{schema}.{table}"


def _ttl_seconds(ttl: str | timedelta | float | None) -> float | None:
    if ttl is None:
        return None
    seconds = parse_duration(ttl).total_seconds()
    if seconds <= 0:
        raise InvalidArgument(f"ttl {ttl!r} must be longer than zero (or None: no expiry)")
    return seconds


def publish(
    store: OnlineStore,
    engine: Engine,
    source: TableRef | Frame,
    *,
    name: str,
    primary_keys: Sequence[str] | str,
    timestamp_key: str | None,
    features: Sequence[str] | None = None,
    mode: PublishMode = "snapshot",
    ttl: str | timedelta | float | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> PublishReport:
    """Write the latest row per key of ``source`` to ``store`` as online table ``name``.

    ``source`` is a lakehouse table (a ``TableRef``: its Delta version is recorded for the
    next incremental publish) or a frame (Arrow, pandas, polars or Spark; a frame has no
    version, so ``"incremental"`` upserts all its rows with newer-wins). ``ttl`` (``"7d"``,
    a ``timedelta`` or seconds) makes rows older than that, by event time, read as missing.

    >>> publish(store, engine, ws.tables.resolve("features.customer"),  # doctest: +SKIP
    ...         name="features.customer", primary_keys=["customer_id"],
    ...         timestamp_key="event_ts", mode="incremental")
    """
    started = time.perf_counter()
    if mode not in ("snapshot", "incremental"):
        raise InvalidArgument(f"mode must be 'snapshot' or 'incremental', got {mode!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidArgument(f"chunk_rows must be a positive whole number, got {chunk_rows!r}")
    online = _online_name(name)
    keys = [primary_keys] if isinstance(primary_keys, str) else list(primary_keys)
    ttl_seconds = _ttl_seconds(ttl)

    ref = source if isinstance(source, TableRef) else None
    version: int | None = None
    frame: Frame = None
    if ref is not None:
        dt = open_delta(ref)
        version = dt.version()
        schema = arrow_schema(dt)
    else:
        frame = engine.from_input(source)
        schema = arrow_schema_of(frame) if is_dataframe(frame) else frame.schema
    spec = build_spec(
        online,
        schema,
        primary_keys=keys,
        timestamp_key=timestamp_key,
        features=features,
        ttl_seconds=ttl_seconds,
    )
    columns = [*keys, *spec.feature_names]
    if timestamp_key is not None and timestamp_key not in columns:
        columns.append(timestamp_key)

    info = store.describe(online)
    previous = info.state.source_version if info is not None else None
    reason = None
    effective: str = mode
    if mode == "incremental":
        reason = _why_snapshot(info, spec, ref, version)
        if reason is not None:
            effective = "snapshot"

    if ref is not None:
        assert version is not None
        if effective == "snapshot":
            frame = _latest(engine, ref, keys, timestamp_key, version, spec.feature_names)
        else:
            assert previous is not None
            frame = changed_rows(engine, ref, spec, previous, version, columns)
    elif frame is not None:
        if is_dataframe(frame):
            frame = frame.select(*[_spark_col(c) for c in columns])
        else:
            frame = _arrow_select(frame, columns)

    target = store.begin(spec, fresh=effective == "snapshot")
    try:
        counts = WriteCounts() if frame is None else _write(store, target, frame, chunk_rows)
        store.commit(
            target,
            PublishState(
                mode=effective,
                source=ref.name if ref is not None else None,
                source_version=version,
                rows_written=counts.applied,
            ),
        )
    except BaseException:
        if effective == "snapshot":
            # The new generation was never served: drop it, keeping the original error.
            with contextlib.suppress(Exception):
                store.abort(target)
        raise
    return PublishReport(
        name=online,
        mode=effective,
        requested_mode=mode,
        reason=reason,
        source=ref.name if ref is not None else None,
        source_version=version,
        previous_version=previous,
        rows_read=counts.received,
        rows_written=counts.applied,
        generation=target.generation,
        seconds=round(time.perf_counter() - started, 3),
    )


def _why_snapshot(
    info: OnlineTableInfo | None, spec: OnlineTableSpec, ref: TableRef | None, version: int | None
) -> str | None:
    """Why an incremental publish must rebuild instead (None: it can be incremental)."""
    if info is None:
        return "the table was not published before"
    if not info.spec.same_layout(spec):
        return "the published columns or types changed"
    if ref is None:
        return None  # a frame: upsert everything with newer-wins
    if info.state.source != ref.name:
        return f"it was last published from {info.state.source or 'a data frame'}"
    if info.state.source_version is None or version is None:
        return "the last publish recorded no table version"
    if info.state.source_version > version:
        return (
            f"the table is at version {version}, older than the published version "
            f"{info.state.source_version} (was it re-created?)"
        )
    try:
        open_delta(ref, version=info.state.source_version)
    except LakeloomError:
        return f"version {info.state.source_version} of {ref.name} can no longer be read"
    return None


def _latest(
    engine: Engine,
    ref: TableRef,
    keys: Sequence[str],
    ts: str | None,
    version: int,
    features: Sequence[str],
) -> Frame:
    """The latest row per key at ``version`` (the engine's ``latest_per_key``)."""
    return engine.latest_per_key(ref, keys, ts, version=version, columns=features)


def _spark_col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _arrow_select(frame: pa.Table | pa.RecordBatchReader, columns: Sequence[str]) -> Any:
    if isinstance(frame, pa.RecordBatchReader):
        schema = pa.schema([frame.schema.field(c) for c in columns])

        def batches() -> Iterator[pa.RecordBatch]:
            for b in frame:
                yield b.select(list(columns))

        return pa.RecordBatchReader.from_batches(schema, batches())
    return frame.select(list(columns))


# -- writing --------------------------------------------------------------------------------
def _chunks(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _write(store: OnlineStore, spec: OnlineTableSpec, frame: Frame, chunk_rows: int) -> WriteCounts:
    if is_dataframe(frame):
        writer = store.partition_writer()
        if writer is not None:
            return _write_from_executors(frame, spec, writer, chunk_rows)
        return _write_through_driver(store, spec, frame, chunk_rows)
    batches = frame.to_batches(max_chunksize=chunk_rows) if isinstance(frame, pa.Table) else frame
    total = WriteCounts()
    for chunk in _chunks(batches, chunk_rows):
        total = total + store.write(spec, chunk)
    return total


def _write_from_executors(
    df: Any, spec: OnlineTableSpec, writer: PartitionWriter, chunk_rows: int
) -> WriteCounts:
    """Each Spark partition writes itself; the driver only sums two counters."""
    from pyspark.sql import functions as F

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        counts = writer(spec, _chunks(batches, chunk_rows))
        yield pa.RecordBatch.from_pydict(
            {"received": [counts.received], "applied": [counts.applied]},
            schema=pa.schema([("received", pa.int64()), ("applied", pa.int64())]),
        )

    row = (
        df.mapInArrow(write_partition, "received long, applied long")
        .agg(F.sum("received").alias("received"), F.sum("applied").alias("applied"))
        .first()
    )
    if row is None:
        return WriteCounts()
    return WriteCounts(int(row["received"] or 0), int(row["applied"] or 0))


def _write_through_driver(
    store: OnlineStore, spec: OnlineTableSpec, df: Any, chunk_rows: int
) -> WriteCounts:
    """Stream partitions to this process one at a time, as Arrow IPC chunks."""

    def to_ipc(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for chunk in _chunks(batches, chunk_rows):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, chunk.schema) as out:
                out.write_batch(chunk)
            yield pa.RecordBatch.from_pydict(
                {"chunk": [sink.getvalue().to_pybytes()]},
                schema=pa.schema([("chunk", pa.binary())]),
            )

    total = WriteCounts()
    for row in df.mapInArrow(to_ipc, "chunk binary").toLocalIterator():
        with pa.ipc.open_stream(pa.py_buffer(row["chunk"])) as reader:
            for batch in reader:
                total = total + store.write(spec, batch)
    return total
