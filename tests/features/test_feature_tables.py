"""Feature tables on both engines: create, merge, overwrite, time travel, describe, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, InvalidTableName, SchemaMismatch
from lakeloom.features import FeatureTableNotFound

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rows(ids: list[int], days: list[int], values: list[float]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "ts": pa.array([T0 + timedelta(days=d) for d in days], TS),
            "spend": pa.array(values, pa.float64()),
        }
    )


def content(ws: Workspace, frame: Any) -> list[dict[str, Any]]:
    table: pa.Table = ws.engine.to_arrow(frame)
    return table.sort_by([("customer_id", "ascending"), ("ts", "ascending")]).to_pylist()


def test_create_merge_overwrite_and_time_travel(fs_ws: Workspace) -> None:
    fs = fs_ws.features
    created = fs.create_table(
        "features.spend",
        primary_keys="customer_id",
        timestamp_key="ts",
        df=rows([1, 2], [0, 0], [1.0, 2.0]),
        description="Spend per customer",
        tags={"team": "growth"},
    )
    assert created.key_columns == ("customer_id", "ts")
    first = fs_ws.tables.version("features.spend")
    # merge: an update (same key and time) and two inserts (a new time, a new key)
    v = fs.write_table("features.spend", rows([1, 1, 3], [0, 5, 0], [10.0, 5.0, 3.0]))
    assert v == first + 1
    assert [
        (r["customer_id"], r["spend"]) for r in content(fs_ws, fs.read_table("features.spend"))
    ] == [
        (1, 10.0),
        (1, 5.0),
        (2, 2.0),
        (3, 3.0),
    ]
    assert len(content(fs_ws, fs.read_table("features.spend", version=first))) == 2
    when = fs.history("features.spend")[0]["timestamp"] + timedelta(seconds=1)
    assert len(content(fs_ws, fs.read_table("features.spend", timestamp=when))) == 4
    fs.write_table("features.spend", rows([7], [1], [7.0]), mode="overwrite")
    assert [r["customer_id"] for r in content(fs_ws, fs.read_table("features.spend"))] == [7]
    assert [t.name for t in fs.list_tables()] == ["features.spend"]
    info = fs.describe("features.spend")
    assert info.table.description == "Spend per customer" and info.table.tags == {"team": "growth"}
    assert info.features == ["spend"] and info.rows == 1
    assert info.freshness == T0 + timedelta(days=1)
    assert info.versions == len(fs.history("features.spend")) and info.version == v + 1
    assert info.to_dict()["primary_keys"] == ["customer_id"]


def test_table_without_timestamp_and_date_keys(fs_ws: Workspace) -> None:
    fs = fs_ws.features
    static = pa.table({"region_id": [1, 2], "name": ["north", "south"]})
    fs.create_table("features.regions", "region_id", df=static)
    assert fs.describe("features.regions").freshness is None
    daily = pa.table({"sku": ["a", "a"], "day": [date(2026, 1, 1), date(2026, 1, 2)], "p": [1, 2]})
    fs.create_table("features.prices", ["sku"], "day", df=daily)
    assert fs.describe("features.prices").freshness == datetime(2026, 1, 2, tzinfo=UTC)


def test_bad_input_writes_nothing(fs_ws: Workspace) -> None:
    fs = fs_ws.features
    with pytest.raises(SchemaMismatch, match=r"occur in more than one row"):
        fs.create_table("features.dup", "customer_id", "ts", df=rows([1, 1], [0, 0], [1.0, 2.0]))
    assert not fs_ws.tables.exists("features.dup")
    nulls = pa.table({"customer_id": pa.array([1, None], pa.int64()), "ts": pa.array([T0, T0], TS)})
    with pytest.raises(SchemaMismatch, match="null in a key column"):
        fs.create_table("features.nulls", "customer_id", "ts", df=nulls)
    assert not fs_ws.tables.exists("features.nulls")
    text_time = pa.table({"customer_id": [1], "ts": ["2026-01-01"], "x": [1.0]})
    with pytest.raises(SchemaMismatch, match="must be a timestamp or a date"):
        fs.create_table("features.text", "customer_id", "ts", df=text_time)
    assert not fs_ws.tables.exists("features.text")
    with pytest.raises(SchemaMismatch, match="no column"):
        fs.create_table("features.nokey", "user_id", df=rows([1], [0], [1.0]))
    assert not fs_ws.tables.exists("features.nokey")
    with pytest.raises(InvalidTableName):
        fs.create_table("lakeloom.mine", "customer_id", df=rows([1], [0], [1.0]))
    with pytest.raises(InvalidArgument, match="plain name"):
        fs.create_table("features.x", "customer id", df=rows([1], [0], [1.0]))

    fs.create_table("features.spend", "customer_id", "ts", df=rows([1], [0], [1.0]))
    version = fs_ws.tables.version("features.spend")
    with pytest.raises(InvalidArgument, match="repeated key"):
        fs.write_table("features.spend", rows([2, 2], [0, 0], [1.0, 2.0]))
    with pytest.raises(SchemaMismatch, match="more than one row"):
        fs.write_table("features.spend", rows([2, 2], [0, 0], [1.0, 2.0]), mode="overwrite")
    assert content(fs_ws, fs.read_table("features.spend")) == content(
        fs_ws, fs.read_table("features.spend", version=version)
    )
    with pytest.raises(InvalidArgument, match="already exists"):
        fs.create_table("features.spend", "customer_id", "ts", df=rows([1], [0], [1.0]))
    with pytest.raises(InvalidArgument, match="'merge' or 'overwrite'"):
        fs.write_table("features.spend", rows([1], [0], [1.0]), mode="append")  # type: ignore[arg-type]


def test_unknown_and_plain_tables(fs_ws: Workspace) -> None:
    fs = fs_ws.features
    fs.create_table("features.spend", "customer_id", "ts", df=rows([1], [0], [1.0]))
    with pytest.raises(FeatureTableNotFound, match=r"did you mean features\.spend"):
        fs.describe("features.spends")
    fs_ws.tables.write("raw.plain", rows([1, 2], [0, 0], [1.0, 2.0]))
    with pytest.raises(FeatureTableNotFound, match="is not a feature table"):
        fs.read_table("raw.plain")
    # Registering an existing table checks its rows, then adds the definition.
    fs.create_table("raw.plain", "customer_id", "ts", description="registered")
    assert fs.get_table("raw.plain").description == "registered"
    assert [t.name for t in fs.list_tables()] == ["features.spend", "raw.plain"]
    fs.drop_table("raw.plain")
    assert not fs_ws.tables.exists("raw.plain")


def test_snapshots_and_definition_updates(ml_ws: Workspace) -> None:
    fs = ml_ws.features
    fs.create_table("features.spend", "customer_id", "ts", df=rows([1], [0], [1.0]))
    tagged = fs.snapshot("features.spend", "train-2026-01")
    fs.write_table("features.spend", rows([1], [0], [9.0]), mode="overwrite")
    ml_ws.tables.vacuum("features.spend", retain="0h")
    got = ml_ws.tables.read("features.spend", version=tagged).to_pylist()
    assert got[0]["spend"] == 1.0  # vacuum kept the tagged snapshot's files
    assert fs.describe("features.spend").snapshots == {"train-2026-01": tagged}
    updated = fs.update_table("features.spend", description="new", tags={"a": "b"})
    assert fs.get_table("features.spend") == updated
