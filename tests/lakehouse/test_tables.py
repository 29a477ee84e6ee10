"""``ws.tables`` and ``ws.sql`` on real Delta tables in a temporary workspace."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import deltalake
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import lakeloom.engines.local as local_engine
from lakeloom import Workspace
from lakeloom.engines.delta_log import data_files, open_delta
from lakeloom.errors import InvalidArgument, InvalidTableName, SchemaMismatch, TableNotFound
from lakeloom.lakehouse import Tables


def rows(table: pa.Table, *keys: str) -> list[dict[str, Any]]:
    """Rows as dicts, sorted by ``keys`` (row order is not part of the contract)."""
    return sorted(table.to_pylist(), key=lambda r: tuple(r[k] for k in keys))


@pytest.fixture
def tables(workspace: Workspace) -> Tables:
    return workspace.tables


# -- writing and reading ---------------------------------------------------------------
def test_write_creates_the_table_and_returns_versions(tables: Tables) -> None:
    assert not tables.exists("raw.people")
    assert tables.write("raw.people", pa.table({"id": [1, 2], "name": ["a", "b"]})) == 0
    assert tables.exists("raw.people")
    assert tables.write("raw.people", pa.table({"id": [3], "name": ["c"]})) == 1
    assert tables.write("raw.people", pa.table({"id": [4], "name": ["d"]}), mode="append") == 2
    assert tables.read("raw.people").num_rows == 4
    assert tables.write("raw.people", pa.table({"id": [9], "name": ["z"]}), mode="overwrite") == 3
    assert rows(tables.read("raw.people"), "id") == [{"id": 9, "name": "z"}]
    assert tables.version("raw.people") == 3


def test_write_refuses_unknown_modes(tables: Tables) -> None:
    with pytest.raises(InvalidArgument, match="mode"):
        tables.write("raw.x", pa.table({"a": [1]}), mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="schema_mode"):
        tables.write("raw.x", pa.table({"a": [1]}), schema_mode="add")  # type: ignore[arg-type]
    assert not tables.exists("raw.x")


def test_inputs_pandas_polars_arrow_and_readers(tables: Tables) -> None:
    tables.write("raw.mixed", pd.DataFrame({"id": [1], "x": [1.5], "s": ["pandas"]}))
    tables.write("raw.mixed", pl.DataFrame({"id": [2], "x": [2.5], "s": ["polars"]}))
    tables.write("raw.mixed", pl.LazyFrame({"id": [3], "x": [3.5], "s": ["lazy"]}))
    tables.write("raw.mixed", pa.table({"id": [4], "x": [4.5], "s": ["arrow"]}))
    batch = pa.record_batch({"id": [5], "x": [5.5], "s": ["reader"]})
    tables.write("raw.mixed", pa.RecordBatchReader.from_batches(batch.schema, [batch]))
    tables.write("raw.mixed", [{"id": 6, "x": 6.5, "s": "dicts"}])
    got = rows(tables.read("raw.mixed"), "id")
    assert [r["s"] for r in got] == ["pandas", "polars", "lazy", "arrow", "reader", "dicts"]
    assert tables.read("raw.mixed").schema == pa.schema(
        [("id", pa.int64()), ("x", pa.float64()), ("s", pa.string())]
    )
    with pytest.raises(InvalidArgument, match="cannot use data of type"):
        tables.write("raw.mixed", {"id": [7]})


def test_types_are_stored_as_delta_types(tables: Tables) -> None:
    naive = [datetime(2026, 1, 1, 12, 0), datetime(2026, 1, 2, 12, 0)]
    data = pa.table(
        {
            "u8": pa.array([1, 2], pa.uint8()),
            "cat": pa.array(["a", "b"]).dictionary_encode(),
            "big": pa.array(["x", "y"], pa.large_string()),
            "ts": pa.array(naive, pa.timestamp("ns")),
        }
    )
    tables.write("raw.types", data)
    schema = tables.read("raw.types").schema
    assert schema.field("u8").type == pa.int16()
    assert schema.field("cat").type == pa.string()
    assert schema.field("big").type == pa.string()
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert tables.read("raw.types").column("ts").to_pylist() == [
        d.replace(tzinfo=UTC) for d in naive
    ]


def test_streamed_reader_is_written_without_being_materialised(
    tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generator of 50 batches: lakeloom hands delta-rs a stream, pulled batch by batch."""
    tables.write("raw.stream", pa.table({"i": pa.array([-1], pa.int64()), "b": [-1]}))
    produced: list[int] = []
    schema = pa.schema([("i", pa.int32()), ("b", pa.int64())])  # i is cast on the fly

    def batches() -> Iterator[pa.RecordBatch]:
        for b in range(50):
            produced.append(b)
            yield pa.record_batch(
                {"i": pa.array(range(b * 1000, b * 1000 + 1000), pa.int32()), "b": [b] * 1000},
                schema=schema,
            )

    seen_at_call: list[int] = []
    real_write = deltalake.write_deltalake

    def spy(table_or_uri: Any, data: Any, **kwargs: Any) -> None:
        seen_at_call.append(len(produced))
        assert isinstance(data, pa.RecordBatchReader)  # still a stream, not a table
        real_write(table_or_uri, data, **kwargs)

    monkeypatch.setattr(local_engine, "write_deltalake", spy)
    reader = pa.RecordBatchReader.from_batches(schema, batches())
    assert tables.write("raw.stream", reader) == 1
    assert seen_at_call == [1]  # only a first batch (a sample) before delta-rs streams
    assert len(produced) == 50
    result = tables.read("raw.stream")
    assert result.num_rows == 50_001
    assert result.schema.field("i").type == pa.int64()
    assert tables.sql("select count(distinct i) n, max(b) m from raw.stream").to_pylist() == [
        {"n": 50_001, "m": 49}
    ]


def test_conform_is_a_no_op_for_data_that_already_fits() -> None:
    from lakeloom.engines.arrow_input import conform

    table = pa.table({"id": pa.array([1, 2], pa.int64()), "s": ["a", "b"]})
    target = pa.schema([("id", pa.int64()), ("s", pa.string())])
    assert conform(table, target, "raw.x") is table
    assert conform(table, None, "raw.x") is table
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    assert conform(reader, target, "raw.x") is reader
    # Data that needs a cast is cast, column by column, in the table's column order.
    other = pa.table({"s": ["c"], "id": pa.array([3], pa.int32())})
    cast = conform(other, target, "raw.x")
    assert isinstance(cast, pa.Table)
    assert cast.schema == target
    assert cast.to_pylist() == [{"id": 3, "s": "c"}]


def test_time_travel_by_version_and_timestamp(tables: Tables) -> None:
    tables.write("raw.tt", pa.table({"v": [0]}))
    time.sleep(0.02)
    after_v0 = datetime.now(UTC)
    time.sleep(0.02)
    tables.write("raw.tt", pa.table({"v": [1]}))
    time.sleep(0.02)
    after_v1 = datetime.now(UTC)
    time.sleep(0.02)
    tables.write("raw.tt", pa.table({"v": [2]}), mode="overwrite")

    assert tables.read("raw.tt").column("v").to_pylist() == [2]
    assert tables.read("raw.tt", version=0).column("v").to_pylist() == [0]
    assert sorted(tables.read("raw.tt", version=1).column("v").to_pylist()) == [0, 1]
    assert tables.read("raw.tt", timestamp=after_v0).column("v").to_pylist() == [0]
    assert sorted(tables.read("raw.tt", timestamp=after_v1).column("v").to_pylist()) == [0, 1]
    # ISO strings and naive datetimes are UTC.
    assert tables.read("raw.tt", timestamp=after_v0.isoformat()).num_rows == 1
    naive = after_v1.replace(tzinfo=None)
    assert tables.read("raw.tt", timestamp=naive).num_rows == 2

    with pytest.raises(InvalidArgument, match="versions 0 to 2"):
        tables.read("raw.tt", version=3)
    with pytest.raises(InvalidArgument, match="no version at or before"):
        tables.read("raw.tt", timestamp=after_v0 - timedelta(days=1))
    with pytest.raises(InvalidArgument, match="not both"):
        tables.read("raw.tt", version=0, timestamp=after_v0)
    with pytest.raises(InvalidArgument, match="ISO 8601"):
        tables.read("raw.tt", timestamp="yesterday")


def test_columns_and_filter(tables: Tables) -> None:
    tables.write(
        "raw.f", pa.table({"id": [1, 2, 3, 4], "x": [1.0, 2.0, 3.0, 4.0], "s": list("abcd")})
    )
    got = tables.read("raw.f", columns=["s", "id"])
    assert got.column_names == ["s", "id"]
    assert got.num_rows == 4
    filtered = tables.read("raw.f", columns=["id"], filter="x >= 2 and s <> 'c'")
    assert filtered.column_names == ["id"]
    assert sorted(filtered.column("id").to_pylist()) == [2, 4]
    assert tables.read("raw.f", filter="id = 3").to_pylist() == [{"id": 3, "x": 3.0, "s": "c"}]
    old = tables.read("raw.f", version=0, filter="id < 2")
    assert old.num_rows == 1
    with pytest.raises(SchemaMismatch, match="nope"):
        tables.read("raw.f", columns=["id", "nope"])
    with pytest.raises(InvalidArgument, match="filter"):
        tables.read("raw.f", filter="nope > 1")


# -- schemas -----------------------------------------------------------------------------
def test_schema_merge_adds_columns(tables: Tables) -> None:
    tables.write("raw.sm", pa.table({"id": [1, 2]}))
    with pytest.raises(SchemaMismatch, match="schema_mode='merge'"):
        tables.write("raw.sm", pa.table({"id": [3], "extra": ["x"]}))
    assert tables.version("raw.sm") == 0
    assert tables.write("raw.sm", pa.table({"id": [3], "extra": ["x"]}), schema_mode="merge") == 1
    result = tables.read("raw.sm")
    assert result.schema.names == ["id", "extra"]
    assert rows(result, "id") == [
        {"id": 1, "extra": None},
        {"id": 2, "extra": None},
        {"id": 3, "extra": "x"},
    ]
    # Data without a column of the table: that column is null in the new rows.
    tables.write("raw.sm", pa.table({"id": [4]}))
    assert rows(tables.read("raw.sm"), "id")[-1] == {"id": 4, "extra": None}
    # SQL sees the merged schema across old and new files.
    assert tables.sql("select count(extra) n from raw.sm").to_pylist() == [{"n": 1}]


def test_incompatible_type_is_refused_naming_column_and_types(tables: Tables) -> None:
    tables.write("raw.ty", pa.table({"id": [1], "amount": [1.5]}))
    with pytest.raises(SchemaMismatch) as info:
        tables.write("raw.ty", pa.table({"id": [2], "amount": ["lots"]}))
    message = str(info.value)
    assert "'amount'" in message
    assert "double" in message
    assert "string" in message
    assert tables.version("raw.ty") == 0
    # Widening is fine: ints go into a float column.
    assert tables.write("raw.ty", pa.table({"id": [3], "amount": [7]})) == 1
    assert rows(tables.read("raw.ty"), "id")[-1] == {"id": 3, "amount": 7.0}


def test_schema_overwrite_replaces_the_schema(tables: Tables) -> None:
    tables.write("raw.so", pa.table({"a": [1]}))
    v = tables.write(
        "raw.so", pa.table({"b": ["x", "y"]}), mode="overwrite", schema_mode="overwrite"
    )
    assert v == 1
    assert tables.read("raw.so").to_pylist() == [{"b": "x"}, {"b": "y"}]
    assert tables.read("raw.so", version=0).to_pylist() == [{"a": 1}]


def test_partitioned_table(tables: Tables) -> None:
    data = pa.table({"country": ["fr", "fr", "de", None], "n": [1, 2, 3, 4]})
    tables.write("raw.part", data, partition_by=["country"])
    assert tables.describe("raw.part").partition_columns == ["country"]
    assert sorted(tables.read("raw.part", filter="country = 'fr'").column("n").to_pylist()) == [
        1,
        2,
    ]
    assert rows(tables.read("raw.part"), "n") == rows(data, "n")
    totals = tables.sql(
        "select country, sum(n) s from raw.part group by country order by country nulls last"
    )
    assert totals.to_pylist() == [
        {"country": "de", "s": 3},
        {"country": "fr", "s": 3},
        {"country": None, "s": 4},
    ]


# -- merge ---------------------------------------------------------------------------------
def test_merge_upserts_on_keys(tables: Tables) -> None:
    tables.write("raw.m", pa.table({"id": [1, 2, 3], "v": ["a", "b", "c"]}))
    assert tables.merge("raw.m", pa.table({"id": [2, 4], "v": ["B", "D"]}), keys="id") == 1
    assert rows(tables.read("raw.m"), "id") == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "B"},
        {"id": 3, "v": "c"},
        {"id": 4, "v": "D"},
    ]
    # Composite keys, pandas input.
    tables.write("raw.m2", pa.table({"k1": [1, 1], "k2": ["x", "y"], "v": [0, 0]}))
    tables.merge(
        "raw.m2", pd.DataFrame({"k1": [1, 2], "k2": ["y", "y"], "v": [5, 6]}), keys=["k1", "k2"]
    )
    assert rows(tables.read("raw.m2"), "k1", "k2") == [
        {"k1": 1, "k2": "x", "v": 0},
        {"k1": 1, "k2": "y", "v": 5},
        {"k1": 2, "k2": "y", "v": 6},
    ]
    # Merging into a missing table creates it.
    assert tables.merge("raw.fresh", pa.table({"id": [1], "v": ["a"]}), keys="id") == 0


def test_merge_refuses_bad_input_and_leaves_the_table(tables: Tables) -> None:
    tables.write("raw.mb", pa.table({"id": [1, 2], "v": ["a", "b"]}))
    with pytest.raises(InvalidArgument, match="repeated key"):
        tables.merge("raw.mb", pa.table({"id": [3, 3], "v": ["x", "y"]}), keys="id")
    with pytest.raises(InvalidArgument, match="null"):
        tables.merge("raw.mb", pa.table({"id": [None, 5], "v": ["x", "y"]}), keys="id")
    with pytest.raises(SchemaMismatch, match="'key'"):
        tables.merge("raw.mb", pa.table({"id": [3], "v": ["x"]}), keys="key")
    with pytest.raises(SchemaMismatch, match="'v'"):
        tables.merge("raw.mb", pa.table({"id": [3], "v": [1.5]}), keys="id")
    with pytest.raises(InvalidArgument, match="at least one key"):
        tables.merge("raw.mb", pa.table({"id": [3], "v": ["x"]}), keys=[])
    assert tables.version("raw.mb") == 0
    assert rows(tables.read("raw.mb"), "id") == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


# -- the Delta log -------------------------------------------------------------------------
def test_history_is_newest_first_with_operations(tables: Tables) -> None:
    tables.write("raw.h", pa.table({"id": [1]}))
    tables.write("raw.h", pa.table({"id": [2]}))
    tables.merge("raw.h", pa.table({"id": [2, 3]}), keys="id")
    tables.write("raw.h", pa.table({"id": [9]}), mode="overwrite")
    tables.restore("raw.h", 1)
    history = tables.history("raw.h")
    assert [h["version"] for h in history] == [4, 3, 2, 1, 0]
    assert [h["operation"] for h in history] == ["RESTORE", "WRITE", "MERGE", "WRITE", "WRITE"]
    assert all(isinstance(h["timestamp"], datetime) for h in history)
    assert history[1]["parameters"].get("mode") == "Overwrite"
    assert [h["version"] for h in tables.history("raw.h", limit=2)] == [4, 3]


def test_restore_to_a_version_and_to_a_tag(tables: Tables) -> None:
    tables.write("raw.r", pa.table({"id": [1, 2]}))
    tables.tag("raw.r", "good")
    tables.write("raw.r", pa.table({"id": [3]}))
    tables.write("raw.r", pa.table({"id": [4]}), mode="overwrite")

    assert tables.restore("raw.r", 1) == 3
    assert sorted(tables.read("raw.r").column("id").to_pylist()) == [1, 2, 3]
    assert tables.restore("raw.r", "good") == 4
    assert sorted(tables.read("raw.r").column("id").to_pylist()) == [1, 2]
    # Restoring is a new version: the restored-over content is still there.
    assert tables.read("raw.r", version=2).column("id").to_pylist() == [4]
    with pytest.raises(InvalidArgument, match="no tag 'missing'"):
        tables.restore("raw.r", "missing")
    with pytest.raises(InvalidArgument, match="does not exist"):
        tables.restore("raw.r", 42)


def test_tags(tables: Tables) -> None:
    tables.write("raw.t", pa.table({"id": [1]}))
    tables.write("raw.t", pa.table({"id": [2]}))
    assert tables.tags("raw.t") == {}
    assert tables.tag("raw.t", "latest-ok") == 1
    assert tables.tag("raw.t", "first", 0) == 0
    assert tables.tags("raw.t") == {"first": 0, "latest-ok": 1}
    tables.tag("raw.t", "first", 1)  # moving a tag
    assert tables.tags("raw.t")["first"] == 1
    tables.untag("raw.t", "first")
    assert tables.tags("raw.t") == {"latest-ok": 1}
    for bad in ["", "12", "has space", "semi;colon", "../up"]:
        with pytest.raises(InvalidArgument):
            tables.tag("raw.t", bad)
    with pytest.raises(InvalidArgument, match="does not exist"):
        tables.tag("raw.t", "future", 7)
    with pytest.raises(InvalidArgument, match="no tag"):
        tables.untag("raw.t", "never")
    assert tables.describe("raw.t").tags == {"latest-ok": 1}


def test_vacuum_never_deletes_a_tagged_versions_files(tables: Tables) -> None:
    tables.write("raw.vac", pa.table({"id": [1, 2, 3]}))
    tables.tag("raw.vac", "keep", 0)
    tables.write("raw.vac", pa.table({"id": [4]}), mode="overwrite")
    tables.write("raw.vac", pa.table({"id": [5]}), mode="overwrite")
    ref = tables.resolve("raw.vac")
    v0_files = [Path(f.uri) for f in data_files(open_delta(ref, version=0))]
    v1_files = [Path(f.uri) for f in data_files(open_delta(ref, version=1))]

    planned = tables.vacuum("raw.vac", retain="0h", dry_run=True)
    assert all(p.exists() for p in v1_files)  # a dry run deletes nothing
    deleted = tables.vacuum("raw.vac", retain="0h")
    assert sorted(deleted) == sorted(planned)
    assert [p.name for p in v1_files] == [Path(d).name for d in deleted]

    assert all(p.exists() for p in v0_files)
    assert not any(p.exists() for p in v1_files)
    assert sorted(tables.read("raw.vac", version=0).column("id").to_pylist()) == [1, 2, 3]
    assert tables.read("raw.vac").column("id").to_pylist() == [5]
    with pytest.raises(InvalidArgument, match="removed"):
        tables.read("raw.vac", version=1)
    with pytest.raises(InvalidArgument, match="removed"):
        tables.read("raw.vac", version=1, filter="id > 0")
    # The tags file itself survives vacuum, and keeps protecting the version.
    assert tables.tags("raw.vac") == {"keep": 0}
    assert tables.vacuum("raw.vac", retain="0h") == []
    # Without the tag, its files go.
    tables.untag("raw.vac", "keep")
    assert len(tables.vacuum("raw.vac", retain="0h")) == len(v0_files)


def test_vacuum_keeps_recent_files_by_default(tables: Tables) -> None:
    tables.write("raw.recent", pa.table({"id": [1]}))
    tables.write("raw.recent", pa.table({"id": [2]}), mode="overwrite")
    assert tables.vacuum("raw.recent") == []  # default retention: 7 days
    assert tables.read("raw.recent", version=0).num_rows == 1


def test_optimize_compacts_small_files_keeping_rows(tables: Tables) -> None:
    for i in range(12):
        tables.write("raw.small", pa.table({"id": [i * 2, i * 2 + 1], "s": [str(i)] * 2}))
    before = rows(tables.read("raw.small"), "id")
    assert tables.describe("raw.small").files == 12
    metrics = tables.optimize("raw.small")
    assert metrics["numFilesRemoved"] == 12
    info = tables.describe("raw.small")
    assert info.files < 12
    assert info.rows == 24
    assert info.version == 12
    assert rows(tables.read("raw.small"), "id") == before
    assert rows(tables.read("raw.small", version=11), "id") == before


def test_list_describe_drop(tables: Tables) -> None:
    assert tables.list() == []
    tables.write("raw.b", pa.table({"id": [1, 2], "name": ["x", "y"]}))
    tables.write("raw.b", pa.table({"id": [3], "name": ["z"]}))
    tables.write("feat.a", pa.table({"v": [1.0]}))
    tables.write("lakeloom.audit", pa.table({"e": ["x"]}), system=True)
    assert tables.list() == ["feat.a", "lakeloom.audit", "raw.b"]
    assert tables.list("raw") == ["raw.b"]
    assert tables.list("RAW") == ["raw.b"]
    assert tables.list("none") == []

    tables.tag("raw.b", "v0", 0)
    info = tables.describe("raw.b")
    assert info.name == "raw.b"
    assert info.version == 1
    assert info.rows == 3
    assert info.files == 2
    assert info.size_bytes > 0
    assert info.schema == pa.schema([("id", pa.int64()), ("name", pa.string())])
    assert info.partition_columns == []
    assert info.last_operation == "WRITE"
    assert info.last_change is not None
    assert abs((datetime.now(UTC) - info.last_change).total_seconds()) < 600
    assert info.tags == {"v0": 0}
    assert Path(info.location).is_dir()
    as_dict = info.to_dict()
    assert as_dict["schema"] == [
        {"name": "id", "type": "int64"},
        {"name": "name", "type": "string"},
    ]
    assert as_dict["rows"] == 3

    tables.drop("raw.b")
    assert tables.list() == ["feat.a", "lakeloom.audit"]
    assert not Path(info.location).exists()
    with pytest.raises(TableNotFound):
        tables.drop("raw.b")
    with pytest.raises(InvalidTableName, match="reserved"):
        tables.drop("lakeloom.audit")
    tables.drop("lakeloom.audit", system=True)
    assert tables.list() == ["feat.a"]


def test_empty_table(tables: Tables) -> None:
    tables.write("raw.empty", pa.table({"id": pa.array([], pa.int64())}))
    assert tables.read("raw.empty").num_rows == 0
    assert tables.describe("raw.empty").rows == 0
    assert tables.sql("select count(*) n from raw.empty").to_pylist() == [{"n": 0}]


# -- SQL -------------------------------------------------------------------------------------
def test_sql_aggregates_and_joins(workspace: Workspace) -> None:
    t = workspace.tables
    t.write(
        "raw.orders",
        pa.table(
            {"order_id": [1, 2, 3, 4], "cust": [10, 10, 20, 30], "amount": [5.0, 7.0, 1.0, 2.0]}
        ),
    )
    t.write("raw.customers", pa.table({"cust": [10, 20, 30], "country": ["fr", "de", "fr"]}))
    per_country = workspace.sql(
        "select c.country, count(*) n, sum(o.amount) total "
        "from raw.orders o join raw.customers c on o.cust = c.cust "
        "group by c.country order by c.country"
    )
    assert per_country.to_pylist() == [
        {"country": "de", "n": 1, "total": 1.0},
        {"country": "fr", "n": 3, "total": 14.0},
    ]
    # Quoted names, upper case, CTEs and subqueries.
    assert workspace.sql('select count(*) n from "RAW"."Orders"').to_pylist() == [{"n": 4}]
    nested = workspace.sql(
        "with big as (select * from raw.orders where amount > 1.5) "
        "select count(*) n from big where cust in (select cust from raw.customers)"
    )
    assert nested.to_pylist() == [{"n": 3}]
    # SQL reads the latest version.
    t.write("raw.orders", pa.table({"order_id": [5], "cust": [20], "amount": [3.0]}))
    assert workspace.sql("select max(order_id) m from raw.orders").to_pylist() == [{"m": 5}]
    assert workspace.sql("select 1 + 1 as two").to_pylist() == [{"two": 2}]


def test_sql_unknown_and_invalid_names(workspace: Workspace) -> None:
    workspace.tables.write("raw.orders", pa.table({"id": [1]}))
    with pytest.raises(TableNotFound) as info:
        workspace.sql("select * from raw.order")
    assert "raw.order" in str(info.value)
    assert info.value.close_matches == ["raw.orders"]
    with pytest.raises(TableNotFound, match=r"raw\.orders"):
        workspace.sql("select * from orders")  # schema forgotten: suggests the table
    for query in [
        'select * from "raw.orders; drop table raw.orders"',
        "select * from '../Tables/raw/orders'",
        'select * from "../x"',
        "select * from a.b.c",
        'select * from raw."x y"',
    ]:
        with pytest.raises(InvalidTableName):
            workspace.sql(query)
    with pytest.raises(InvalidArgument, match="2 statements"):
        workspace.sql("select * from raw.orders; drop table raw.orders")
    with pytest.raises(InvalidArgument, match="SQL failed"):
        workspace.sql("selec 1")
    with pytest.raises(InvalidArgument, match="empty"):
        workspace.sql("   ")
    assert workspace.tables.read("raw.orders").num_rows == 1


# -- names -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "raw/../x",
        "a.b.c",
        "",
        "   ",
        "raw",
        "raw.",
        ".x",
        "1raw.x",
        "raw.x;drop",
        "raw.x; drop table raw.y",
        "raw.x y",
        'raw."x"',
        "raw.x'",
        "raw.x-y",
        "raw.ünï",
    ],
)
def test_invalid_names(tables: Tables, name: str) -> None:
    with pytest.raises(InvalidTableName):
        tables.write(name, pa.table({"a": [1]}))
    with pytest.raises(InvalidTableName):
        tables.read(name)
    with pytest.raises(InvalidTableName):
        tables.exists(name)
    assert tables.list() == []


def test_non_string_name(tables: Tables) -> None:
    with pytest.raises(InvalidTableName):
        tables.read(None)  # type: ignore[arg-type]


def test_names_are_case_insensitive(tables: Tables) -> None:
    tables.write("Raw.People", pa.table({"id": [1]}))
    assert tables.list() == ["raw.people"]
    assert tables.read("RAW.PEOPLE").num_rows == 1


def test_missing_table_names_close_matches(tables: Tables) -> None:
    tables.write("raw.customers", pa.table({"id": [1]}))
    for call in (
        lambda: tables.read("raw.customer"),
        lambda: tables.history("raw.customer"),
        lambda: tables.describe("raw.customer"),
        lambda: tables.tag("raw.customer", "x"),
        lambda: tables.vacuum("raw.customer"),
        lambda: tables.restore("raw.customer", 0),
        lambda: tables.drop("raw.customer"),
    ):
        with pytest.raises(TableNotFound) as info:
            call()
        assert "'raw.customer'" in str(info.value)
        assert "raw.customers" in str(info.value)
    with pytest.raises(TableNotFound) as far:
        tables.read("zzz.qqq")
    assert far.value.close_matches == []


def test_reserved_schema(tables: Tables) -> None:
    with pytest.raises(InvalidTableName, match="reserved"):
        tables.write("lakeloom.alias_history", pa.table({"a": [1]}))
    with pytest.raises(InvalidTableName, match="reserved"):
        tables.write("LakeLoom.x", pa.table({"a": [1]}))
    with pytest.raises(InvalidTableName, match="reserved"):
        tables.merge("lakeloom.alias_history", pa.table({"a": [1]}), keys="a")
    assert tables.write("lakeloom.alias_history", pa.table({"a": [1]}), system=True) == 0
    assert tables.merge("lakeloom.alias_history", pa.table({"a": [2]}), keys="a", system=True) == 1
    # lakeloom's own tables are readable (and queryable) like any other.
    assert tables.read("lakeloom.alias_history").num_rows == 2
    assert tables.sql("select count(*) n from lakeloom.alias_history").to_pylist() == [{"n": 2}]
