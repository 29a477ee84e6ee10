"""The engine contract: every test runs unchanged on each engine and expects the same result.

Results are compared as Arrow (``engine.to_arrow``) sorted by a key, schemas included, so an
engine passes only when it returns what the local engine returns.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from lakeloom.engines.base import Engine
from lakeloom.errors import InvalidArgument, SchemaMismatch, TableNotFound
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables

TS = pa.timestamp("us", tz="UTC")


def rows(engine: Engine, frame: Any, key: str | list[str] = "id") -> pa.Table:
    """A frame as one Arrow table sorted by ``key``."""
    keys = [key] if isinstance(key, str) else key
    table: pa.Table = engine.to_arrow(frame)
    return table.sort_by([(k, "ascending") for k in keys]) if table.num_rows else table


def assert_table(actual: pa.Table, expected: pa.Table) -> None:
    """Same column names, types and rows (in order)."""
    assert actual.schema.equals(expected.schema, check_metadata=False), (
        f"\n{actual.schema}\n!=\n{expected.schema}"
    )
    assert actual.to_pylist() == expected.to_pylist()


def people(ids: list[int], *, score: float = 1.0) -> pa.Table:
    """A small table: id, name, score."""
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f"n{i}" for i in ids], pa.string()),
            "score": pa.array([score * i for i in ids], pa.float64()),
        }
    )


# -- write, append, overwrite, time travel ---------------------------------------------
def test_write_append_overwrite_versions(tables: Tables, engine: Engine) -> None:
    assert tables.write("raw.people", people([1, 2])) == 0
    assert tables.write("raw.people", people([3]), mode="append") == 1
    assert_table(rows(engine, tables.read("raw.people")), people([1, 2, 3]))
    assert tables.write("raw.people", people([7, 8], score=2.0), mode="overwrite") == 2
    assert_table(rows(engine, tables.read("raw.people")), people([7, 8], score=2.0))
    assert tables.version("raw.people") == 2


def test_read_at_version_and_timestamp(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1]))
    time.sleep(0.02)  # distinct commit timestamps (milliseconds)
    tables.write("raw.people", people([2]))
    time.sleep(0.02)
    tables.write("raw.people", people([3]), mode="overwrite")
    assert_table(rows(engine, tables.read("raw.people", version=0)), people([1]))
    assert_table(rows(engine, tables.read("raw.people", version=1)), people([1, 2]))
    history = {h["version"]: h["timestamp"] for h in tables.history("raw.people")}
    at_v1 = history[1] + timedelta(microseconds=500)
    assert_table(rows(engine, tables.read("raw.people", timestamp=at_v1)), people([1, 2]))
    assert_table(
        rows(engine, tables.read("raw.people", timestamp=at_v1.isoformat())), people([1, 2])
    )
    with pytest.raises(InvalidArgument, match="versions 0 to 2"):
        tables.read("raw.people", version=9)
    with pytest.raises(InvalidArgument, match="no version at or before"):
        tables.read("raw.people", timestamp=history[0] - timedelta(days=1))


def test_missing_table(tables: Tables, engine: Engine) -> None:
    with pytest.raises(TableNotFound):
        tables.read("raw.nothing")


def test_columns_and_filter(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1, 2, 3, 4]))
    got = rows(engine, tables.read("raw.people", columns=["id", "score"], filter="score >= 2"))
    assert_table(got, people([2, 3, 4]).select(["id", "score"]))
    # The filter may use columns that are not selected.
    got = rows(engine, tables.read("raw.people", columns=["id"], filter="name = 'n1'"))
    assert_table(got, pa.table({"id": pa.array([1], pa.int64())}))
    with pytest.raises(SchemaMismatch, match="no column"):
        tables.read("raw.people", columns=["id", "nope"])
    with pytest.raises(InvalidArgument, match="filter"):
        tables.read("raw.people", filter="nope > 1")


# -- schemas ---------------------------------------------------------------------------
def test_schema_evolution_with_merge(tables: Tables, engine: Engine) -> None:
    v0 = tables.write("raw.people", people([1, 2]))
    more = people([3]).append_column("city", pa.array(["Oslo"]))
    with pytest.raises(SchemaMismatch, match=r"'city'.*schema_mode='merge'"):
        tables.write("raw.people", more)
    assert tables.version("raw.people") == v0
    assert tables.write("raw.people", more, schema_mode="merge") > v0
    expected = people([1, 2, 3]).append_column("city", pa.array([None, None, "Oslo"]))
    assert_table(rows(engine, tables.read("raw.people")), expected)
    # Later appends may leave the new column out: it is null for them.
    tables.write("raw.people", people([4]))
    got = rows(engine, tables.read("raw.people", columns=["id", "city"]))
    assert got.column("city").to_pylist() == [None, None, "Oslo", None]


def test_overwrite_with_new_schema(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1, 2]))
    other = pa.table({"key": ["a", "b"], "when": pa.array([date(2024, 1, 1)] * 2)})
    with pytest.raises(SchemaMismatch):
        tables.write("raw.people", other, mode="overwrite")
    v = tables.write("raw.people", other, mode="overwrite", schema_mode="overwrite")
    assert v == 1
    assert_table(rows(engine, tables.read("raw.people"), "key"), other)
    # Replacing the schema may also replace the partitioning.
    tables.write(
        "raw.people", other, mode="overwrite", schema_mode="overwrite", partition_by=["key"]
    )
    assert tables.describe("raw.people").partition_columns == ["key"]
    assert_table(rows(engine, tables.read("raw.people"), "key"), other)
    assert_table(rows(engine, tables.read("raw.people", version=0)), people([1, 2]))


def test_schema_mismatch_leaves_table_unchanged(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1]))
    bad_type = pa.table({"id": ["x"], "name": ["a"], "score": [1.0]})
    with pytest.raises(SchemaMismatch, match=r"'id'.*int64.*string"):
        tables.write("raw.people", bad_type)
    with pytest.raises(SchemaMismatch, match="'extra'"):
        tables.write("raw.people", people([2]).append_column("extra", pa.array([1])))
    narrow = pa.table({"n": pa.array([1], pa.int32())})
    tables.write("raw.narrow", narrow)
    with pytest.raises(SchemaMismatch):
        tables.write("raw.narrow", pa.table({"n": pa.array([2**40], pa.int64())}))
    assert tables.version("raw.people") == 0
    assert tables.version("raw.narrow") == 0
    assert_table(rows(engine, tables.read("raw.people")), people([1]))


def test_types_are_conformed(tables: Tables, engine: Engine) -> None:
    tables.write("raw.t", pa.table({"id": pa.array([1], pa.int64()), "x": [1.5]}))
    # Narrower ints, unsigned ints, missing columns and pandas categoricals all fit.
    tables.write("raw.t", pa.table({"id": pa.array([2], pa.int32())}))
    tables.write(
        "raw.t", pa.table({"id": pa.array([3], pa.uint16()), "x": pa.array([4], pa.int8())})
    )
    cats = pd.DataFrame({"id": [4], "c": pd.Categorical(["k"])})
    tables.write("raw.t", cats, schema_mode="merge")
    tables.write("raw.t", pl.DataFrame({"id": [5], "x": [0.5]}))
    expected = pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
            "x": [1.5, None, 4.0, None, 0.5],
            "c": [None, None, None, "k", None],
        }
    )
    assert_table(rows(engine, tables.read("raw.t")), expected)


def test_timestamps_round_trip_as_utc_micros(tables: Tables, engine: Engine) -> None:
    naive = pd.DataFrame(
        {
            "id": [1, 2],
            "happened": pd.to_datetime(
                ["2024-03-01 12:00:00.123456", "2024-03-02 00:00:00.000000"]
            ),
        }
    )
    tables.write("raw.events", naive)
    paris = pa.array(
        [datetime(2024, 3, 3, 13, 0, tzinfo=UTC)], pa.timestamp("ns", tz="Europe/Paris")
    )
    tables.write("raw.events", pa.table({"id": pa.array([3], pa.int64()), "happened": paris}))
    expected = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "happened": pa.array(
                [
                    datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
                    datetime(2024, 3, 2, tzinfo=UTC),
                    datetime(2024, 3, 3, 13, 0, tzinfo=UTC),
                ],
                TS,
            ),
        }
    )
    assert_table(rows(engine, tables.read("raw.events")), expected)
    got = rows(
        engine, tables.read("raw.events", filter="happened >= TIMESTAMP '2024-03-02 00:00:00'")
    )
    assert got.column("id").to_pylist() == [2, 3]


# -- partitions ------------------------------------------------------------------------
def test_partitioned_table(tables: Tables, engine: Engine) -> None:
    data = pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "country": ["no", "se", "no", None],
            "day": pa.array([date(2024, 1, 1), date(2024, 1, 2)] * 2),
            "amount": [1.0, 2.0, 3.0, 4.0],
        }
    )
    tables.write("sales.orders", data, partition_by=["country", "day"])
    assert tables.describe("sales.orders").partition_columns == ["country", "day"]
    assert_table(rows(engine, tables.read("sales.orders")), data)
    got = rows(engine, tables.read("sales.orders", filter="country = 'no'", columns=["id", "day"]))
    assert_table(got, data.filter(pa.compute.equal(data["country"], "no")).select(["id", "day"]))
    # Appends keep the partitioning; asking for another one is refused.
    tables.write("sales.orders", data.slice(0, 1))
    assert rows(engine, tables.read("sales.orders")).num_rows == 5
    with pytest.raises(InvalidArgument, match=r"(?i)partition"):
        tables.write("sales.orders", data, partition_by=["id"])
    with pytest.raises(InvalidArgument, match=r"(?i)partition"):
        tables.write("sales.other", data, partition_by=["nope"])


def test_many_partitions(tables: Tables, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # Past UNION_LIMIT partitions the Spark engine joins partition values by file name
    # instead of one scan per partition: lower the limit so small data takes that path.
    monkeypatch.setattr("lakeloom.engines.spark_delta.UNION_LIMIT", 3)
    data = pa.table({"id": pa.array(range(8), pa.int64()), "part": [f"p{i % 6}" for i in range(8)]})
    tables.write("raw.wide", data, partition_by=["part"])
    assert_table(rows(engine, tables.read("raw.wide")), data)
    got = rows(engine, tables.sql("select part, count(*) as n from raw.wide group by part"), "part")
    assert got.column("n").to_pylist() == [2, 2, 1, 1, 1, 1]


# -- merge -----------------------------------------------------------------------------
def test_merge_upserts(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1, 2, 3]))
    update = pa.table(
        {"id": pa.array([2, 5], pa.int64()), "name": ["two", "five"], "score": [20.0, 50.0]}
    )
    v = tables.merge("raw.people", update, keys="id")
    assert v == 1
    expected = pa.table(
        {
            "id": pa.array([1, 2, 3, 5], pa.int64()),
            "name": ["n1", "two", "n3", "five"],
            "score": [1.0, 20.0, 3.0, 50.0],
        }
    )
    assert_table(rows(engine, tables.read("raw.people")), expected)
    # A merge whose data lacks a column sets it to null on the rows it touches.
    tables.merge(
        "raw.people", pa.table({"id": pa.array([1], pa.int64()), "score": [0.0]}), keys=["id"]
    )
    got = rows(engine, tables.read("raw.people"))
    assert got.slice(0, 1).to_pylist() == [{"id": 1, "name": None, "score": 0.0}]


def test_merge_creates_missing_table_and_partitions(tables: Tables, engine: Engine) -> None:
    data = pa.table({"k": ["a", "b"], "p": ["x", "y"], "v": pa.array([1, 2], pa.int64())})
    assert tables.merge("raw.kv", data, keys=["k"]) == 0
    assert_table(rows(engine, tables.read("raw.kv"), "k"), data)
    tables.write("raw.kvp", data, partition_by=["p"])
    tables.merge(
        "raw.kvp",
        pa.table({"k": ["a", "c"], "p": ["y", "x"], "v": pa.array([9, 3], pa.int64())}),
        keys="k",
    )
    expected = pa.table(
        {"k": ["a", "b", "c"], "p": ["y", "y", "x"], "v": pa.array([9, 2, 3], pa.int64())}
    )
    assert_table(rows(engine, tables.read("raw.kvp"), "k"), expected)


def test_merge_errors(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1, 2]))
    with pytest.raises(InvalidArgument, match="null"):
        tables.merge("raw.people", pa.table({"id": pa.array([None, 3], pa.int64())}), keys="id")
    with pytest.raises(InvalidArgument, match="1 row"):
        tables.merge("raw.people", people([3, 3, 4]), keys="id")
    with pytest.raises(SchemaMismatch, match="'nope'"):
        tables.merge("raw.people", people([3]), keys=["nope"])
    with pytest.raises(SchemaMismatch, match="not in table"):
        tables.merge("raw.people", people([3]).append_column("k", pa.array([1])), keys=["k"])
    with pytest.raises(InvalidArgument, match="at least one key"):
        tables.merge("raw.people", people([3]), keys=[])
    assert tables.version("raw.people") == 0


def test_merge_without_rows_changes_nothing(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1]))
    assert tables.merge("raw.people", people([]), keys="id") == 0
    assert tables.version("raw.people") == 0
    assert_table(rows(engine, tables.read("raw.people")), people([1]))


# -- SQL -------------------------------------------------------------------------------
def test_sql_aggregate_and_join(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1, 2, 3, 4]))
    orders = pa.table(
        {
            "person": pa.array([1, 1, 2, 4, 4, 4], pa.int64()),
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    tables.write("sales.orders", orders)
    got = rows(
        engine,
        tables.sql(
            """
            select p.name, count(*) as n, sum(o.amount) as total
            from sales.orders o join raw.people as p on o.person = p.id  -- raw.nothing here
            where p.name <> 'raw.people'
            group by p.name
            """
        ),
        "name",
    )
    expected = pa.table(
        {
            "name": ["n1", "n2", "n4"],
            "n": pa.array([2, 1, 3], pa.int64()),
            "total": [3.0, 3.0, 15.0],
        }
    )
    assert_table(got, expected)
    # Upper case and a table used twice.
    got = rows(engine, tables.sql("SELECT COUNT(*) AS n FROM RAW.PEOPLE a, raw.people b"), "n")
    assert got.column("n").to_pylist() == [16]


def test_sql_errors(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people([1]))
    with pytest.raises(TableNotFound, match=r"raw\.nothing"):
        tables.sql("select * from raw.nothing")
    with pytest.raises(InvalidArgument):
        tables.sql("select nope from raw.people")
    with pytest.raises(InvalidArgument, match="empty"):
        tables.sql("  ")


# -- empty tables ----------------------------------------------------------------------
def test_empty_table(tables: Tables, engine: Engine) -> None:
    empty = people([])
    assert tables.write("raw.empty", empty) == 0
    got = rows(engine, tables.read("raw.empty"))
    assert_table(got, empty)
    got = rows(engine, tables.sql("select count(*) as n, sum(score) as s from raw.empty"), "n")
    assert_table(
        got, pa.table({"n": pa.array([0], pa.int64()), "s": pa.array([None], pa.float64())})
    )
    assert tables.write("raw.empty", people([1])) == 1
    assert tables.write("raw.empty", empty, mode="overwrite") == 2
    assert rows(engine, tables.read("raw.empty")).num_rows == 0
    assert rows(engine, tables.read("raw.empty", version=1)).num_rows == 1


# -- cross-engine ----------------------------------------------------------------------
@pytest.mark.spark
@pytest.mark.parametrize("writer", ["local", "spark"])
def test_tables_are_shared_between_engines(
    writer: str, local_engine: Engine, spark_engine: Engine, tmp_path: Path
) -> None:
    engines = {"local": local_engine, "spark": spark_engine}
    reader = "spark" if writer == "local" else "local"
    w = Tables(Storage(str(tmp_path)), engines[writer])
    r = Tables(Storage(str(tmp_path)), engines[reader])
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "p": ["a", "b", None],
            "at": pa.array([datetime(2024, 1, d, 8, tzinfo=UTC) for d in (1, 2, 3)], TS),
            "tags": pa.array([["x"], [], None], pa.list_(pa.string())),
            "price": pa.array([1, 2, 3], pa.decimal128(10, 2)),
        }
    )
    w.write("raw.shared", data, partition_by=["p"])
    w.write(
        "raw.shared",
        pa.table({"id": pa.array([4], pa.int64()), "extra": [1.5]}),
        schema_mode="merge",
    )
    w.merge("raw.shared", pa.table({"id": pa.array([1], pa.int64()), "p": ["z"]}), keys="id")
    mine = rows(engines[writer], w.read("raw.shared"))
    theirs = rows(engines[reader], r.read("raw.shared"))
    assert_table(theirs, mine)
    assert mine.num_rows == 4
    assert_table(rows(engines[reader], r.read("raw.shared", version=0)), data)
    # And the other engine can keep writing to it.
    r.write("raw.shared", pa.table({"id": pa.array([5], pa.int64()), "p": ["a"]}))
    assert rows(engines[writer], w.read("raw.shared")).column("id").to_pylist() == [1, 2, 3, 4, 5]
