"""Publishing on the Spark engine: executors write to Redis, SQLite gets chunks on the driver.

The results must equal the local engine's (the same lookups after the same publishes).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakeloom.engines.base import Engine
from lakeloom.features.online import OnlineStore, lookup, publish
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables

pytestmark = pytest.mark.spark

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAME = "features.customer"


def customers(keys: list[int], hours: list[float], values: list[float]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(keys, pa.int64()),
            "event_ts": pa.array(
                [T0 + timedelta(hours=h) for h in hours], pa.timestamp("us", "UTC")
            ),
            "spend": pa.array(values, pa.float64()),
            "segment": [None if v < 0 else f"s{v:g}" for v in values],
            "day": pa.array([(T0 + timedelta(hours=h)).date() for h in hours], pa.date32()),
        }
    )


def run(store: OnlineStore, engine: Engine, tables: Tables, **kw: Any) -> Any:
    return publish(
        store,
        engine,
        tables.resolve(NAME),
        name=NAME,
        primary_keys=["customer_id"],
        timestamp_key="event_ts",
        **kw,
    )


@pytest.mark.redis
def test_spark_publishes_what_the_local_engine_publishes(
    make_store: Callable[[str], OnlineStore],
    spark_engine: Engine,
    local_engine: Engine,
    tmp_path: Path,
) -> None:
    # One table, published to both stores: Redis from the executors, SQLite through the
    # driver. It is written by the local engine (quicker), then appended to by Spark, whose
    # files have no Delta statistics (incremental publishing reads their Parquet footers).
    stores = [make_store("sqlite"), make_store("redis")]
    tables = Tables(Storage(str(tmp_path / "ws")), local_engine)
    spark_tables = Tables(Storage(str(tmp_path / "ws")), spark_engine)
    n = 60
    tables.write(
        NAME,
        customers(list(range(n)), [float(i % 7) for i in range(n)], [float(i) for i in range(n)]),
    )
    tables.write(NAME, customers([1, 2, 3], [100, -100, 100], [-1.0, 2.5, 3.5]))
    expected_one = {
        "customer_id": 1,
        "spend": -1.0,
        "segment": None,
        "day": (T0 + timedelta(hours=100)).date(),
    }
    for store in stores:
        report = run(store, spark_engine, tables, chunk_rows=16)
        assert report.mode == "snapshot" and report.rows_read >= n
        got = lookup(store, NAME, [1, 2, 3, 59, 1000])
        assert got[0] == expected_one
        assert got[1] is not None and got[1]["spend"] == 2.0  # the older row lost
        assert [r["spend"] if r else None for r in got[2:]] == [3.5, 59.0, None]

    spark_tables.write(NAME, customers([2, 70], [200, 3.5], [22.0, 70.0]))
    for store in stores:
        inc = run(store, spark_engine, tables, mode="incremental")
        assert inc.mode == "incremental" and inc.rows_read < n
        assert [r["spend"] if r else None for r in lookup(store, NAME, [2, 70, 5])] == [
            22.0,
            70.0,
            5.0,
        ]


def test_spark_frames_publish_too(
    make_store: Callable[[str], OnlineStore], spark_engine: Engine
) -> None:
    store = make_store("sqlite")
    df = spark_engine.from_input(customers([1, 1, 2], [0, 5, 1], [1.0, 5.0, 2.0]))
    report = publish(
        store,
        spark_engine,
        df,
        name=NAME,
        primary_keys="customer_id",
        timestamp_key="event_ts",
        ttl="3650d",
    )
    assert report.rows_read == 3
    assert [r["spend"] if r else None for r in lookup(store, NAME, [1, 2])] == [5.0, 2.0]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_spark_publish_path_depends_on_the_store(
    kind: str, make_store: Callable[[str], OnlineStore]
) -> None:
    store = make_store(kind)
    # Redis is written from the executors; a SQLite file only from this process.
    assert (store.partition_writer() is None) == (store.kind == "sqlite")
