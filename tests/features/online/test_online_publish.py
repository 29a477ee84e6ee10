"""Publishing feature tables to the online store: snapshot, incremental, chunks, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from lakeloom.engines.base import Engine
from lakeloom.errors import InvalidArgument, InvalidTableName
from lakeloom.features.online import OnlineStore, lookup, publish
from lakeloom.features.online.base import OnlineTableSpec, WriteCounts
from lakeloom.lakehouse.tables import Tables

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "features.customer"


def ts(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def customers(keys: list[int], hours: list[float], values: list[Any]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(keys, pa.int64()),
            "event_ts": pa.array([ts(h) for h in hours], pa.timestamp("us", "UTC")),
            "spend": pa.array(values, pa.float64()),
            "segment": [f"s{v}" for v in values],
        }
    )


def run(
    store: OnlineStore, engine: Engine, tables: Tables, mode: str = "snapshot", **kw: Any
) -> Any:
    return publish(
        store,
        engine,
        tables.resolve(NAME),
        name=NAME,
        primary_keys=["customer_id"],
        timestamp_key="event_ts",
        mode=mode,  # type: ignore[arg-type]
        **kw,
    )


def spend(store: OnlineStore, keys: list[int]) -> list[Any]:
    return [None if r is None else r["spend"] for r in lookup(store, NAME, keys)]


def test_snapshot_publishes_the_latest_row_per_key(
    store: OnlineStore, local_engine: Engine, tables: Tables
) -> None:
    tables.write(NAME, customers([1, 2, 1, 3], [0, 1, 2, -1], [10, 20, 11, 30]))
    report = run(store, local_engine, tables)
    assert report.mode == "snapshot" and report.reason is None
    assert (report.source, report.source_version, report.previous_version) == (NAME, 0, None)
    assert spend(store, [1, 2, 3]) == [11, 20, 30]
    assert lookup(store, NAME, [1]) == [{"customer_id": 1, "spend": 11.0, "segment": "s11"}]
    info = store.describe(NAME)
    assert info is not None and info.state.source_version == 0 and info.state.source == NAME


def test_incremental_reads_the_new_rows_including_late_ones(
    store: OnlineStore, local_engine: Engine, tables: Tables
) -> None:
    base_hours = [-1000.0 + i for i in range(100)]
    tables.write(NAME, customers(list(range(100)), base_hours, list(range(100))))
    tables.write(NAME, customers([2], [100], [222]))  # key 2 is newest in the store
    run(store, local_engine, tables)
    # New rows: a newer value for 1, an older one for 2 (ignored) and a late new key 500,
    # whose time is before the newest published time.
    tables.write(NAME, customers([1, 2, 500], [50, -10, -5], [111, -1, 5000]))
    report = run(store, local_engine, tables, mode="incremental")
    assert report.mode == "incremental" and report.reason is None
    assert (report.previous_version, report.source_version) == (1, 2)
    # Only rows from the new files' earliest time on are read: the 3 new ones and key 2's.
    assert report.rows_read == 4
    assert report.rows_written == 3  # 1, 500 and key 2's unchanged row (same time)
    assert spend(store, [1, 2, 500, 3]) == [111, 222, 5000, 3]

    again = run(store, local_engine, tables, mode="incremental")
    assert (again.mode, again.rows_read, again.rows_written) == ("incremental", 0, 0)


def test_incremental_falls_back_to_a_snapshot_and_says_why(
    store: OnlineStore, local_engine: Engine, tables: Tables
) -> None:
    tables.write(NAME, customers([1], [0], [1]))
    first = run(store, local_engine, tables, mode="incremental")
    assert first.mode == "snapshot" and first.requested_mode == "incremental"
    assert first.reason == "the table was not published before"
    tables.write(
        NAME, customers([1], [1], [2]).append_column("extra", pa.array([1])), schema_mode="merge"
    )
    changed = run(store, local_engine, tables, mode="incremental")
    assert changed.mode == "snapshot" and "columns" in (changed.reason or "")
    assert lookup(store, NAME, [1])[0] == {
        "customer_id": 1,
        "spend": 2.0,
        "segment": "s2",
        "extra": 1,
    }
    frame = customers([1], [5], [9]).append_column("extra", pa.array([9]))
    other = publish(
        store, local_engine, frame, name=NAME, primary_keys="customer_id", timestamp_key="event_ts"
    )
    assert other.source is None
    back = run(store, local_engine, tables, mode="incremental")
    assert back.mode == "snapshot" and "a data frame" in (back.reason or "")


def test_incremental_after_a_merge(
    store: OnlineStore, local_engine: Engine, tables: Tables
) -> None:
    tables.write(NAME, customers([1, 2, 3], [0, 0, 0], [1, 2, 3]))
    run(store, local_engine, tables)
    tables.merge(NAME, customers([2, 4], [1, 1], [20, 40]), keys="customer_id")
    report = run(store, local_engine, tables, mode="incremental")
    assert report.mode == "incremental"
    assert spend(store, [1, 2, 3, 4]) == [1, 20, 3, 40]


def test_deleted_rows_stay_until_a_snapshot(
    store: OnlineStore, local_engine: Engine, tables: Tables
) -> None:
    tables.write(NAME, customers([1, 2], [0, 0], [1, 2]))
    run(store, local_engine, tables)
    tables.write(NAME, customers([2], [1], [22]), mode="overwrite")
    assert run(store, local_engine, tables, mode="incremental").mode == "incremental"
    assert spend(store, [1, 2]) == [1, 22]
    run(store, local_engine, tables)
    assert spend(store, [1, 2]) == [None, 22]


def test_without_a_timestamp_key_the_last_publish_wins(
    store: OnlineStore, local_engine: Engine, tables: Tables
) -> None:
    tables.write(NAME, customers([1, 2], [0, 0], [1, 2]).drop_columns(["event_ts"]))
    kw: dict[str, Any] = {"name": NAME, "primary_keys": ["customer_id"], "timestamp_key": None}
    publish(store, local_engine, tables.resolve(NAME), **kw)
    tables.write(NAME, customers([1], [0], [10]).drop_columns(["event_ts"]), mode="overwrite")
    report = publish(store, local_engine, tables.resolve(NAME), mode="incremental", **kw)
    assert report.mode == "incremental"
    assert spend(store, [1, 2]) == [10, 2]


class CountingStore:
    """Wraps a store and records the size of every write."""

    def __init__(self, inner: OnlineStore) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def write(self, spec: OnlineTableSpec, batch: pa.RecordBatch | pa.Table) -> WriteCounts:
        self.sizes.append(batch.num_rows)
        return self.inner.write(spec, batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_rows_are_written_in_chunks(
    store: OnlineStore, local_engine: Engine, tables: Tables
) -> None:
    n = 50
    tables.write(NAME, customers(list(range(n)), [0] * n, list(range(n))))
    counting = CountingStore(store)
    report = run(counting, local_engine, tables, chunk_rows=7)  # type: ignore[arg-type]
    assert max(counting.sizes) <= 7 and sum(counting.sizes) == n == report.rows_written
    reader = pa.RecordBatchReader.from_batches(
        customers([1], [0], [1]).schema,
        [customers(list(range(20)), [1] * 20, [5] * 20).to_batches()[0]] * 2,
    )
    counting.sizes = []
    publish(
        counting,
        local_engine,
        reader,
        name="features.stream",  # type: ignore[arg-type]
        primary_keys="customer_id",
        timestamp_key="event_ts",
        chunk_rows=8,
    )
    assert counting.sizes == [8, 8, 4, 8, 8, 4]


def test_frames_of_every_kind(store: OnlineStore, local_engine: Engine) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "event_ts": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
            "spend": [1.5, 2.5],
        }
    )
    report = publish(
        store,
        local_engine,
        frame,
        name=NAME,
        primary_keys="customer_id",
        timestamp_key="event_ts",
        ttl=None,
        features=["spend"],
    )
    assert report.rows_written == 2
    assert spend(store, [2]) == [2.5]


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"primary_keys": ["nope"]}, InvalidArgument, "primary key 'nope' is not a column"),
        ({"primary_keys": ["spend"]}, InvalidArgument, "must be integers or strings"),
        ({"primary_keys": []}, InvalidArgument, "at least one primary key"),
        ({"timestamp_key": "spend"}, InvalidArgument, "must be a timestamp or a date"),
        ({"timestamp_key": "when"}, InvalidArgument, "timestamp key 'when' is not a column"),
        ({"features": ["spend", "nope"]}, InvalidArgument, "feature 'nope' is not a column"),
        ({"features": "spend"}, InvalidArgument, "list of column names"),
        ({"features": ["customer_id"]}, InvalidArgument, "is a primary key"),
        ({"features": ["tags"]}, InvalidArgument, "type struct"),
        ({"mode": "full"}, InvalidArgument, "mode must be"),
        ({"chunk_rows": 0}, InvalidArgument, "chunk_rows"),
        ({"ttl": "soon"}, InvalidArgument, "duration 'soon'"),
        ({"ttl": 0}, InvalidArgument, "longer than zero"),
        ({"name": "nodot"}, InvalidTableName, "schema.table"),
        ({"name": "lakeloom.x"}, InvalidTableName, "reserved"),
    ],
)
def test_bad_input_is_refused_clearly(
    store: OnlineStore, local_engine: Engine, kw: dict[str, Any], error: type, message: str
) -> None:
    data = customers([1], [0], [1]).append_column(
        "tags", pa.array([{"a": 1}], pa.struct([("a", pa.int64())]))
    )
    args: dict[str, Any] = {
        "name": NAME,
        "primary_keys": ["customer_id"],
        "timestamp_key": "event_ts",
        "features": ["spend"],
    }
    args.update(kw)
    with pytest.raises(error, match=message):
        publish(store, local_engine, data, **args)
    assert store.list_tables() == []


def test_a_failed_snapshot_keeps_serving_the_previous_one(
    store: OnlineStore, local_engine: Engine
) -> None:
    publish(
        store,
        local_engine,
        customers([1], [0], [1]),
        name=NAME,
        primary_keys="customer_id",
        timestamp_key="event_ts",
    )
    schema = customers([1], [0], [1]).schema

    def broken() -> Any:
        yield customers([1, 2], [1, 1], [5, 6]).to_batches()[0]
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        publish(
            store,
            local_engine,
            pa.RecordBatchReader.from_batches(schema, broken()),
            name=NAME,
            primary_keys="customer_id",
            timestamp_key="event_ts",
            chunk_rows=1,
        )
    assert spend(store, [1, 2]) == [1, None]
