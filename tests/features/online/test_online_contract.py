"""The online-store contract: every backend (SQLite, Redis) passes these tests unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lakeloom.engines.base import Engine
from lakeloom.errors import ConcurrentWriteConflict, InvalidArgument, TableNotFound
from lakeloom.features.online import (
    OnlineStore,
    OnlineTableNotFound,
    UnknownFeature,
    lookup,
    lookup_table,
    publish,
)
from lakeloom.features.online.base import OnlineTableSpec, PublishState
from lakeloom.features.online.publish import build_spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ts(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def rows(**columns: Any) -> pa.Table:
    return pa.table(columns)


def spec_of(
    data: pa.Table,
    keys: list[str],
    timestamp_key: str | None = "ts",
    ttl: float | None = None,
    name: str = "features.c",
) -> OnlineTableSpec:
    return build_spec(
        name,
        data.schema,
        primary_keys=keys,
        timestamp_key=timestamp_key,
        features=None,
        ttl_seconds=ttl,
    )


def put(
    store: OnlineStore,
    data: pa.Table,
    keys: list[str] | None = None,
    *,
    fresh: bool = False,
    ttl: float | None = None,
    name: str = "features.c",
) -> int:
    """Write ``data`` with newer-wins into table ``name`` (fresh: as a new generation)."""
    spec = spec_of(data, keys or ["k"], ttl=ttl, name=name)
    target = store.begin(spec, fresh=fresh or store.describe(name) is None)
    counts = store.write(target, data)
    store.commit(target, PublishState(mode="snapshot" if fresh else "incremental"))
    return counts.applied


def same(a: Any, b: Any) -> bool:
    """Equal values of the same type (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and np.isnan(a):
        return bool(np.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


ALL_TYPES = pa.table(
    {
        "k": pa.array([1, 2, 3, -(2**63)], pa.int64()),
        "ts": pa.array([ts(0)] * 4, pa.timestamp("us", "UTC")),
        "i64": pa.array([2**63 - 1, -(2**63), None, 0], pa.int64()),
        "i8": pa.array([-128, 127, None, 0], pa.int8()),
        "f64": [1.5, float("nan"), None, float("-inf")],
        "f32": pa.array([0.1, float("inf"), None, -0.0], pa.float32()),
        "s": ["plain", "é ☃ \x00 \x1f : *", None, ""],
        "b": [True, False, None, True],
        "by": [b"\x00\xff", b"", None, b"bytes"],
        "dec": pa.array(
            [Decimal("1.50"), Decimal("-123456789.01"), None, Decimal("0.00")], pa.decimal128(12, 2)
        ),
        "d": pa.array([date(2020, 2, 29), date(1901, 1, 1), None, date(2099, 12, 31)]),
        "tn": pa.array(
            [
                datetime(2020, 1, 1, 1, 2, 3, 4),
                datetime(1960, 6, 1, 0, 0, 0, 999999),
                None,
                datetime(2200, 1, 1),
            ],
            pa.timestamp("us"),
        ),
        "tz": pa.array(
            [
                datetime(2020, 1, 1, 1, 2, 3, 4, tzinfo=UTC),
                None,
                datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
                ts(1),
            ],
            pa.timestamp("us", "UTC"),
        ),
        "tns": pa.array([1_577_840_523_123_456_789, None, 0, -1_000], pa.timestamp("ns", "UTC")),
        "lf": [[1.0, float("nan"), None], [], None, [2.5]],
        "ls": [["a", "b"], [None], None, []],
        "li": pa.array([[1, 2**40], [], None, [-1]], pa.list_(pa.int64())),
    }
)


# -- values ---------------------------------------------------------------------------------
def test_every_type_round_trips_exactly(store: OnlineStore) -> None:
    put(store, ALL_TYPES, fresh=True)
    got = lookup(store, "features.c", [1, 2, 3, -(2**63)])
    # Nanoseconds are kept to the microsecond, as everywhere in lakeloom.
    micros = pa.timestamp("us", "UTC")
    expected = ALL_TYPES.drop_columns(["ts"]).set_column(
        ALL_TYPES.column_names.index("tns") - 1,
        "tns",
        ALL_TYPES.column("tns").cast(micros, safe=False),
    )
    for g, e in zip(got, expected.to_pylist(), strict=True):
        assert g is not None
        assert list(g) == list(e)
        for name, want in e.items():
            assert same(g[name], want), (name, g[name], want)


def test_lookup_table_keeps_the_published_types(store: OnlineStore) -> None:
    put(store, ALL_TYPES, fresh=True)
    table = lookup_table(store, "features.c", [2, 99], features=["f32", "dec", "tz", "li"])
    assert table.column_names == ["k", "f32", "dec", "tz", "li"]
    assert table.schema.field("f32").type == pa.float32()
    assert table.schema.field("dec").type == pa.decimal128(12, 2)
    assert table.schema.field("tz").type == pa.timestamp("us", "UTC")
    assert table.column("k").to_pylist() == [2, 99]
    assert table.column("dec").to_pylist() == [Decimal("-123456789.01"), None]


def test_features_subset_in_the_order_asked(store: OnlineStore) -> None:
    put(store, ALL_TYPES, fresh=True)
    assert lookup(store, "features.c", [1], features=["s", "i8"]) == [
        {"k": 1, "s": "plain", "i8": -128}
    ]
    assert lookup(store, "features.c", [1], features=()) == [{"k": 1}]


def test_missing_and_repeated_keys(store: OnlineStore) -> None:
    data = rows(k=[1, 2], ts=[ts(0), ts(0)], x=[10, 20])
    put(store, data, fresh=True)
    assert lookup(store, "features.c", [2, 5, 2, 1]) == [
        {"k": 2, "x": 20},
        None,
        {"k": 2, "x": 20},
        {"k": 1, "x": 10},
    ]
    assert lookup(store, "features.c", []) == []
    many = list(range(1500))
    assert [r["k"] if r else None for r in lookup(store, "features.c", many)][:3] == [None, 1, 2]


def test_key_shapes_and_composite_keys(store: OnlineStore) -> None:
    data = rows(
        user=[1, 1, 2], item=["a", "b:c\x1f", "a"], ts=[ts(0)] * 3, score=[0.5, 0.25, 0.125]
    )
    put(store, data, keys=["user", "item"], fresh=True)
    got = lookup(
        store, "features.c", [(1, "b:c\x1f"), {"item": "a", "user": 2}, [1, "a"], (2, "b")]
    )
    assert got == [
        {"user": 1, "item": "b:c\x1f", "score": 0.25},
        {"user": 2, "item": "a", "score": 0.125},
        {"user": 1, "item": "a", "score": 0.5},
        None,
    ]
    single = rows(k=["x"], ts=[ts(0)], v=[1])
    put(store, single, name="features.s", fresh=True)
    assert (
        lookup(store, "features.s", [{"k": "x"}, ("x",), np.str_("x")]) == [{"k": "x", "v": 1}] * 3
    )
    put(store, rows(k=[7], ts=[ts(0)], v=[1]), name="features.n", fresh=True)
    assert lookup(store, "features.n", [np.int64(7), (7,), pa.scalar(7)]) == [{"k": 7, "v": 1}] * 3
    assert lookup(store, "features.n", np.array([7])) == [{"k": 7, "v": 1}]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("7", "str where an integer"),
        (7.0, "float where an integer"),
        (True, "bool where an integer"),
        (None, "is null"),
        ((7, 8), "2 parts, expected 1"),
        ({"id": 7}, "has no 'k'"),
    ],
)
def test_wrong_keys_are_refused_clearly(store: OnlineStore, key: Any, message: str) -> None:
    put(store, rows(k=[7], ts=[ts(0)], v=[1]), fresh=True)
    with pytest.raises(InvalidArgument, match=message) as info:
        lookup(store, "features.c", [key])
    assert "primary key is k" in str(info.value)
    with pytest.raises(InvalidArgument, match=message):
        lookup(store, "features.c", [7, key])


def test_wrong_composite_and_string_keys_are_refused(store: OnlineStore) -> None:
    put(store, rows(u=[1], i=["a"], ts=[ts(0)], v=[1]), keys=["u", "i"], fresh=True)
    with pytest.raises(InvalidArgument, match="single value"):
        lookup(store, "features.c", [1])
    with pytest.raises(InvalidArgument, match="int where a string"):
        lookup(store, "features.c", [(1, 2)])
    with pytest.raises(InvalidArgument, match=r"primary key is \(u, i\)"):
        lookup(store, "features.c", [(1, "a", 3)])
    with pytest.raises(InvalidArgument, match="list of keys"):
        lookup(store, "features.c", "a")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="wrap a single key"):
        lookup(store, "features.c", {"u": 1, "i": "a"})  # type: ignore[arg-type]


def test_unknown_table_and_feature(store: OnlineStore) -> None:
    put(store, rows(k=[1], ts=[ts(0)], age=[3]), name="features.customer", fresh=True)
    with pytest.raises(OnlineTableNotFound, match=r"did you mean features\.customer") as info:
        lookup(store, "features.custome", [1])
    assert isinstance(info.value, TableNotFound)
    with pytest.raises(OnlineTableNotFound, match="publish it first"):
        lookup(store, "other.thing", [1])
    with pytest.raises(UnknownFeature, match="no feature 'agee'; did you mean age"):
        lookup(store, "features.customer", [1], features=["agee"])
    with pytest.raises(InvalidArgument, match="list of feature names"):
        lookup(store, "features.customer", [1], features="age")
    # Table names are case-insensitive, as everywhere in lakeloom.
    assert lookup(store, " Features.Customer", [1]) == [{"k": 1, "age": 3}]
    described = store.describe("FEATURES.customer")
    assert described is not None and described.spec.name == "features.customer"
    with pytest.raises(InvalidArgument, match="online table name is a string"):
        lookup(store, None, [1])  # type: ignore[arg-type]


# -- newer wins, TTL ------------------------------------------------------------------------
def test_newer_wins_and_equal_time_replaces(store: OnlineStore) -> None:
    put(store, rows(k=[1, 2], ts=[ts(5), ts(5)], v=["t5", "t5"]), fresh=True)
    assert put(store, rows(k=[1, 2], ts=[ts(4), ts(6)], v=["t4", "t6"])) == 1
    assert lookup(store, "features.c", [1, 2]) == [{"k": 1, "v": "t5"}, {"k": 2, "v": "t6"}]
    assert put(store, rows(k=[1], ts=[ts(5)], v=["t5 again"])) == 1
    assert lookup(store, "features.c", [1]) == [{"k": 1, "v": "t5 again"}]
    # Within one write the rows of a key apply in time order whatever their order.
    put(store, rows(k=[3, 3, 3], ts=[ts(2), ts(9), ts(1)], v=["a", "b", "c"]))
    assert lookup(store, "features.c", [3]) == [{"k": 3, "v": "b"}]


def test_null_keys_are_left_out_and_null_times_are_oldest(store: OnlineStore) -> None:
    data = rows(
        k=[1, None, 2], ts=pa.array([None, ts(0), ts(0)], pa.timestamp("us", "UTC")), v=[1, 2, 3]
    )
    assert put(store, data, fresh=True) == 2
    assert lookup(store, "features.c", [1, 2]) == [{"k": 1, "v": 1}, {"k": 2, "v": 3}]
    put(store, rows(k=[1], ts=[datetime(1700, 1, 1, tzinfo=UTC)], v=[9]))
    assert lookup(store, "features.c", [1]) == [{"k": 1, "v": 9}]


def test_event_times_the_stores_cannot_order_are_refused(store: OnlineStore) -> None:
    far = rows(k=[1], ts=pa.array([datetime(2300, 1, 1)], pa.timestamp("us", "UTC")), v=[1])
    with pytest.raises(InvalidArgument, match="outside the years 1685 to 2255"):
        put(store, far, fresh=True)


def test_ttl_is_enforced_on_read(store: OnlineStore) -> None:
    now = datetime.now(UTC)
    data = rows(k=[1, 2], ts=[now - timedelta(hours=2), now - timedelta(minutes=10)], v=[1, 2])
    put(store, data, fresh=True, ttl=3600)
    assert lookup(store, "features.c", [1, 2]) == [None, {"k": 2, "v": 2}]
    assert lookup_table(store, "features.c", [1]).column("v").to_pylist() == [None]
    info = store.describe("features.c")
    assert info is not None and info.spec.ttl_seconds == 3600


def test_a_write_of_expired_rows_does_not_resurrect_older_ones(store: OnlineStore) -> None:
    now = datetime.now(UTC)
    put(store, rows(k=[1], ts=[now - timedelta(hours=3)], v=[1]), fresh=True, ttl=3600)
    put(store, rows(k=[1], ts=[now - timedelta(hours=2)], v=[2]), ttl=3600)
    assert lookup(store, "features.c", [1]) == [None]


# -- generations, metadata, concurrency -----------------------------------------------------
def test_snapshot_replaces_keys_and_columns(store: OnlineStore) -> None:
    put(store, rows(k=[1, 2], ts=[ts(0)] * 2, v=[1, 2]), fresh=True)
    before = store.describe("features.c")
    put(store, rows(k=[2, 3], ts=[ts(0)] * 2, w=["b", "c"]), fresh=True)
    after = store.describe("features.c")
    assert before is not None and after is not None
    assert after.spec.generation > before.spec.generation
    assert lookup(store, "features.c", [1, 2, 3]) == [None, {"k": 2, "w": "b"}, {"k": 3, "w": "c"}]
    with pytest.raises(UnknownFeature):
        lookup(store, "features.c", [2], features=["v"])


def test_another_processs_publish_is_seen(
    store_kind: str, make_store: Callable[[str], OnlineStore]
) -> None:
    reader, writer = make_store(store_kind), make_store(store_kind)
    put(writer, rows(k=[1], ts=[ts(0)], v=[1]), fresh=True)
    assert lookup(reader, "features.c", [1]) == [{"k": 1, "v": 1}]
    put(writer, rows(k=[1], ts=[ts(1)], v=[2]))
    assert lookup(reader, "features.c", [1]) == [{"k": 1, "v": 2}]
    put(writer, rows(k=[1], ts=[ts(2)], s=["new"]), fresh=True)
    assert lookup(reader, "features.c", [1]) == [{"k": 1, "s": "new"}]
    # A TTL set by a later publish applies to readers that planned the lookup before.
    spec = spec_of(rows(k=[1], ts=[ts(2)], s=["new"]), ["k"], ttl=60)
    writer.commit(writer.begin(spec, fresh=False), PublishState(mode="incremental"))
    assert lookup(reader, "features.c", [1]) == [None]
    # Even the key's type may change with a snapshot.
    put(writer, rows(k=["a"], ts=[ts(3)], s=["str key"]), fresh=True)
    assert lookup(reader, "features.c", ["a"]) == [{"k": "a", "s": "str key"}]
    with pytest.raises(InvalidArgument, match="int where a string"):
        lookup(reader, "features.c", [1])
    writer.drop("features.c")
    with pytest.raises(OnlineTableNotFound):
        lookup(reader, "features.c", ["a"])


def test_aborted_snapshot_leaves_the_served_one(store: OnlineStore) -> None:
    put(store, rows(k=[1], ts=[ts(0)], v=[1]), fresh=True)
    spec = spec_of(rows(k=[1], ts=[ts(0)], v=[1]), ["k"])
    target = store.begin(spec, fresh=True)
    store.write(target, rows(k=[1, 2], ts=[ts(1)] * 2, v=[5, 6]))
    store.abort(target)
    assert lookup(store, "features.c", [1, 2]) == [{"k": 1, "v": 1}, None]
    info = store.describe("features.c")
    assert info is not None and info.spec.generation < target.generation


def test_an_older_publish_cannot_commit_over_a_newer_snapshot(store: OnlineStore) -> None:
    data = rows(k=[1], ts=[ts(0)], v=[1])
    put(store, data, fresh=True)
    slow = store.begin(spec_of(data, ["k"]), fresh=False)
    put(store, rows(k=[1], ts=[ts(0)], v=[2]), fresh=True)  # a snapshot commits meanwhile
    with pytest.raises(ConcurrentWriteConflict, match="newer snapshot"):
        store.commit(slow, PublishState(mode="incremental"))
    assert lookup(store, "features.c", [1]) == [{"k": 1, "v": 2}]


def test_incremental_writes_need_the_published_layout(store: OnlineStore) -> None:
    put(store, rows(k=[1], ts=[ts(0)], v=[1]), fresh=True)
    with pytest.raises(InvalidArgument, match="publish a snapshot first"):
        store.begin(spec_of(rows(k=[1], ts=[ts(0)], v=["x"]), ["k"]), fresh=False)


def test_list_describe_drop(store: OnlineStore) -> None:
    assert store.list_tables() == []
    assert store.describe("features.c") is None
    put(store, rows(k=[1], ts=[ts(0)], v=[1]), name="features.b", fresh=True)
    put(store, rows(k=[1], ts=[ts(0)], v=[1]), name="features.a", fresh=True)
    assert store.list_tables() == ["features.a", "features.b"]
    info = store.describe("features.a")
    assert info is not None
    assert info.to_dict()["features"] == [{"name": "v", "type": "int64"}]
    store.drop("features.a")
    assert store.list_tables() == ["features.b"]
    with pytest.raises(OnlineTableNotFound):
        store.drop("features.a")
    with pytest.raises(OnlineTableNotFound):
        lookup(store, "features.a", [1])


def test_concurrent_lookups_from_threads(store: OnlineStore) -> None:
    n = 200
    put(store, rows(k=list(range(n)), ts=[ts(0)] * n, v=[i * 2 for i in range(n)]), fresh=True)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(offset, n, 4):
                assert lookup(store, "features.c", [i]) == [{"k": i, "v": i * 2}]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(o,)) for o in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_close_then_use_again(store: OnlineStore) -> None:
    put(store, rows(k=[1], ts=[ts(0)], v=[1]), fresh=True)
    store.close()
    store.close()
    assert lookup(store, "features.c", [1]) == [{"k": 1, "v": 1}]


def test_publish_from_a_frame_on_each_store(store: OnlineStore, local_engine: Engine) -> None:
    data = rows(k=[1, 1, 2], ts=[ts(0), ts(3), ts(1)], v=[1, 3, 2])
    report = publish(
        store,
        local_engine,
        data,
        name="Features.C",
        primary_keys="k",
        timestamp_key="ts",
        chunk_rows=1,
    )
    assert (report.name, report.mode, report.rows_read) == ("features.c", "snapshot", 3)
    assert lookup(store, "features.c", [1, 2]) == [{"k": 1, "v": 3}, {"k": 2, "v": 2}]
