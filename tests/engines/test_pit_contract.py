"""The point-in-time contract: ``point_in_time_join`` and ``latest_per_key`` on every engine.

Golden cases spell out each rule of :class:`PointInTimeLookup` (exact times, future rows,
ties, missing keys, nulls, duplicates, lookback edges, several tables, the write-time
cutoff); randomized cases compare both engines with :func:`reference`, a slow,
obviously correct implementation written straight from the rules.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from lakeloom.engines.base import Engine, PointInTimeLookup
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.lakehouse.tables import Tables

TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(day: float) -> datetime:
    """``day`` days after T0."""
    return T0 + timedelta(days=day)


def result_rows(engine: Engine, frame: Any, order: str = "rid") -> list[dict[str, Any]]:
    table: pa.Table = engine.to_arrow(frame)
    return table.sort_by(order).to_pylist() if table.num_rows else []


def lookup(tables: Tables, name: str, **kw: Any) -> PointInTimeLookup:
    kw.setdefault("keys", ("id",))
    kw["keys"] = tuple(kw["keys"])
    kw["features"] = tuple(kw["features"])
    for k in ("spine_keys", "output_names"):
        if k in kw:
            kw[k] = tuple(kw[k])
    return PointInTimeLookup(table=tables.resolve(name), **kw)


def feature_table(
    rows: list[tuple[Any, ...]], names: Sequence[str] = ("id", "ts", "x", "s")
) -> pa.Table:
    types = {"id": pa.int64(), "ts": TS, "x": pa.float64(), "s": pa.string(), "w": TS}
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    return pa.table({n: pa.array(list(c), types[n]) for n, c in zip(names, cols, strict=True)})


def spine_table(rows: list[tuple[int, Any, Any]]) -> pa.Table:
    """rid, id, t (UTC timestamps)."""
    rid, ids, ts = zip(*rows, strict=True)
    return pa.table(
        {
            "rid": pa.array(rid, pa.int64()),
            "id": pa.array(ids, pa.int64()),
            "t": pa.array(ts, TS),
        }
    )


# -- latest_per_key --------------------------------------------------------------------
def test_latest_per_key(tables: Tables, engine: Engine) -> None:
    tables.write(
        "f.t",
        feature_table(
            [
                (1, at(1), 1.0, "a"),
                (1, at(3), 3.0, "c"),
                (1, at(2), 2.0, "b"),
                (2, None, 9.0, "n"),  # a null time is older than any time
                (2, at(0), 0.5, "z"),
                (3, at(5), 1.0, "x"),  # tie on (id, ts): the row that sorts last wins
                (3, at(5), 2.0, "a"),
                (3, at(5), 2.0, None),
                (None, at(9), 7.0, "k"),  # null keys are left out
                (4, None, 4.0, "q"),
            ]
        ),
    )
    ref = tables.resolve("f.t")
    got = result_rows(engine, engine.latest_per_key(ref, ["id"], "ts"), "id")
    assert got == [
        {"id": 1, "ts": at(3), "x": 3.0, "s": "c"},
        {"id": 2, "ts": at(0), "x": 0.5, "s": "z"},
        {"id": 3, "ts": at(5), "x": 2.0, "s": "a"},
        {"id": 4, "ts": None, "x": 4.0, "s": "q"},
    ]
    few = engine.to_arrow(engine.latest_per_key(ref, ["id"], "ts", columns=["s"]))
    assert few.column_names == ["id", "ts", "s"]
    assert few.schema.field("ts").type == TS
    # Without a time, every row of a key competes on its values.
    untimed = result_rows(engine, engine.latest_per_key(ref, ["id"], None, columns=["x"]), "id")
    assert [r["x"] for r in untimed] == [3.0, 9.0, 2.0, 4.0]
    tables.write("f.t", feature_table([(1, at(7), 7.0, "new")]))
    old = result_rows(engine, engine.latest_per_key(ref, ["id"], "ts", version=0), "id")
    assert old[0]["x"] == 3.0
    assert result_rows(engine, engine.latest_per_key(ref, ["id"], "ts"), "id")[0]["x"] == 7.0


def test_latest_per_key_errors(tables: Tables, engine: Engine) -> None:
    tables.write("f.t", feature_table([(1, at(1), 1.0, "a")]))
    ref = tables.resolve("f.t")
    with pytest.raises(SchemaMismatch, match="'nope'"):
        engine.latest_per_key(ref, ["id"], "nope")
    with pytest.raises(SchemaMismatch, match="'zz'"):
        engine.latest_per_key(ref, ["id"], "ts", columns=["zz"])
    with pytest.raises(InvalidArgument, match="timestamp or a date"):
        engine.latest_per_key(ref, ["id"], "s")


# -- point_in_time_join: golden cases --------------------------------------------------
def test_as_of_rules(tables: Tables, engine: Engine) -> None:
    tables.write(
        "f.t",
        feature_table(
            [
                (1, at(1), 1.0, "a"),
                (1, at(3), 3.0, "c"),  # exact-time match for rid 1
                (1, at(9), 9.0, "future"),  # after every label: never used
                (2, at(2), None, None),  # a matched row's nulls stay null (no default)
                (3, at(4), 1.0, "x"),  # tie on (id, ts): x=2.0 sorts last
                (3, at(4), 2.0, "b"),
                (3, at(4), 2.0, "a"),
                (3, at(4), None, "zz"),
                (4, None, 4.0, "no time: never matches"),
            ]
        ),
    )
    spine = spine_table(
        [
            (0, 1, at(2)),  # between rows: the earlier one
            (1, 1, at(3)),  # exact time
            (2, 1, at(0.5)),  # before every row: no match, default
            (3, 2, at(5)),
            (4, 3, at(4)),
            (5, 3, at(4)),  # duplicate label rows stay separate rows
            (6, 5, at(4)),  # unknown key
            (7, 4, at(4)),
            (8, 1, None),  # no label time: no match
        ]
    )
    lk = lookup(
        tables,
        "f.t",
        features=["x", "s"],
        timestamp="ts",
        spine_timestamp="t",
        default_values={"x": -1.0},
    )
    got = result_rows(engine, engine.point_in_time_join(spine, [lk]))
    assert [(r["x"], r["s"]) for r in got] == [
        (1.0, "a"),
        (3.0, "c"),
        (-1.0, None),
        (None, None),
        (2.0, "b"),
        (2.0, "b"),
        (-1.0, None),
        (-1.0, None),
        (-1.0, None),
    ]
    assert list(got[0]) == ["rid", "id", "t", "x", "s"]


def test_result_shape_keeps_spine_rows_and_order(tables: Tables, engine: Engine) -> None:
    tables.write("f.t", feature_table([(i % 3, at(i), float(i), str(i)) for i in range(10)]))
    spine = spine_table([(r, r % 4, at(9 - r)) for r in range(12)])
    lk = lookup(
        tables,
        "f.t",
        features=["x"],
        timestamp="ts",
        spine_timestamp="t",
        output_names=["x_latest"],
    )
    result = engine.to_arrow(engine.point_in_time_join(spine, [lk]))
    assert result.schema.names == ["rid", "id", "t", "x_latest"]
    assert result.schema.field("x_latest").type == pa.float64()
    assert result.num_rows == 12
    assert sorted(result.column("rid").to_pylist()) == list(range(12))
    if engine.name == "local":
        assert result.column("rid").to_pylist() == list(range(12))


def test_lookback_edges(tables: Tables, engine: Engine) -> None:
    tables.write("f.t", feature_table([(1, at(0), 1.0, "a"), (2, at(0), 2.0, "b")]))
    spine = spine_table([(0, 1, at(2)), (1, 1, at(2) + timedelta(microseconds=1)), (2, 2, at(1))])
    lk = lookup(
        tables,
        "f.t",
        features=["x"],
        timestamp="ts",
        spine_timestamp="t",
        lookback=timedelta(days=2),
        default_values={"x": 0.0},
    )
    got = result_rows(engine, engine.point_in_time_join(spine, [lk]))
    # Exactly `lookback` old matches (inclusive); one microsecond older does not.
    assert [r["x"] for r in got] == [1.0, 0.0, 2.0]


def test_several_tables_with_different_keys(tables: Tables, engine: Engine) -> None:
    tables.write("f.customers", feature_table([(1, at(0), 10.0, "gold"), (2, at(0), 20.0, "tin")]))
    tables.write(
        "f.products",
        pa.table(
            {
                "sku": pa.array(["p1", "p1", "p2"]),
                "day": pa.array([date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 1)]),
                "price": pa.array([5, 6, 7], pa.int32()),
            }
        ),
    )
    tables.write(
        "f.static",
        pa.table({"region_id": pa.array([1, 2], pa.int64()), "name": ["north", "south"]}),
    )
    spine = pa.table(
        {
            "rid": pa.array([0, 1, 2, 3], pa.int64()),
            "customer": pa.array([1, 2, 1, 3], pa.int32()),  # int32 matches int64 keys
            "product": ["p1", "p1", "p2", "p1"],
            "region": pa.array([2, 1, 1, None], pa.int64()),
            "when": pa.array(
                [datetime(2026, 1, 2), datetime(2026, 1, 3), datetime(2026, 1, 9), None],
                pa.timestamp("us"),  # naive: taken as UTC
            ),
        }
    )
    lookups = [
        lookup(
            tables,
            "f.customers",
            features=["s", "x"],
            spine_keys=["customer"],
            timestamp="ts",
            spine_timestamp="when",
            output_names=["tier", "spend"],
        ),
        lookup(
            tables,
            "f.products",
            keys=["sku"],
            features=["price"],
            spine_keys=["product"],
            timestamp="day",
            spine_timestamp="when",
        ),
        lookup(tables, "f.static", keys=["region_id"], features=["name"], spine_keys=["region"]),
        # Same table, latest row whatever the time: no spine time.
        lookup(
            tables,
            "f.products",
            keys=["sku"],
            features=["price"],
            spine_keys=["product"],
            timestamp="day",
            output_names=["price_now"],
        ),
    ]
    result = engine.to_arrow(engine.point_in_time_join(spine, lookups))
    assert result.schema.names == [
        "rid", "customer", "product", "region", "when", "tier", "spend", "price", "name",
        "price_now",
    ]  # fmt: skip
    assert result.schema.field("price").type == pa.int32()
    got = result.sort_by("rid").to_pylist()
    assert [(r["tier"], r["spend"], r["price"], r["name"], r["price_now"]) for r in got] == [
        ("gold", 10.0, 5, "south", 6),
        ("tin", 20.0, 6, "north", 6),
        ("gold", 10.0, 7, "north", 7),
        (None, None, None, None, 6),
    ]


def test_write_time_cutoff(tables: Tables, engine: Engine) -> None:
    """Rows written after the label time (a late backfill) are ignored with the cutoff."""
    names = ("id", "ts", "x", "w")
    tables.write(
        "f.t",
        feature_table(
            [
                (1, at(1), 1.0, at(1)),
                (1, at(2), 2.0, at(10)),  # backfilled on day 10
                (2, at(1), 5.0, at(8)),
            ],
            names,
        ),
    )
    spine = spine_table([(0, 1, at(5)), (1, 1, at(11)), (2, 2, at(5))])
    base: dict[str, Any] = {"features": ["x"], "timestamp": "ts", "spine_timestamp": "t"}
    plain = engine.point_in_time_join(spine, [lookup(tables, "f.t", **base)])
    assert [r["x"] for r in result_rows(engine, plain)] == [2.0, 2.0, 5.0]
    cut = lookup(tables, "f.t", **base, written_at="w", default_values={"x": 0.0})
    got = result_rows(engine, engine.point_in_time_join(spine, [cut]))
    assert [r["x"] for r in got] == [1.0, 2.0, 0.0]


def test_version_and_date_spine(tables: Tables, engine: Engine) -> None:
    tables.write("f.t", feature_table([(1, at(0), 1.0, "a")]))
    tables.write("f.t", feature_table([(1, at(1), 2.0, "b")]))
    spine = pa.table({"rid": [0], "id": [1], "d": pa.array([date(2026, 1, 5)])})
    lk = lookup(tables, "f.t", features=["x"], timestamp="ts", spine_timestamp="d")
    assert result_rows(engine, engine.point_in_time_join(spine, [lk]))[0]["x"] == 2.0
    old = lookup(tables, "f.t", features=["x"], timestamp="ts", spine_timestamp="d", version=0)
    assert result_rows(engine, engine.point_in_time_join(spine, [old]))[0]["x"] == 1.0


def test_errors(tables: Tables, engine: Engine) -> None:
    tables.write("f.t", feature_table([(1, at(0), 1.0, "a")]))
    spine = spine_table([(0, 1, at(1))])
    base: dict[str, Any] = {"features": ["x"], "timestamp": "ts", "spine_timestamp": "t"}
    with pytest.raises(SchemaMismatch, match="'nope'"):
        engine.point_in_time_join(spine, [lookup(tables, "f.t", **{**base, "features": ["nope"]})])
    with pytest.raises(SchemaMismatch, match="spine"):
        engine.point_in_time_join(spine.drop_columns(["id"]), [lookup(tables, "f.t", **base)])
    text_keys = spine.set_column(1, "id", pa.array(["1"]))
    with pytest.raises(SchemaMismatch, match="key 'id' is string in the spine"):
        engine.point_in_time_join(text_keys, [lookup(tables, "f.t", **base)])
    text_time = spine.set_column(2, "t", pa.array(["2026-01-02"]))
    with pytest.raises(InvalidArgument, match="timestamp column 't' of the spine is string"):
        engine.point_in_time_join(text_time, [lookup(tables, "f.t", **base)])
    with pytest.raises(InvalidArgument, match="already a column"):
        engine.point_in_time_join(
            spine, [lookup(tables, "f.t", **{**base, "output_names": ["rid"]})]
        )
    with pytest.raises(InvalidArgument, match="does not output"):
        engine.point_in_time_join(spine, [lookup(tables, "f.t", **base, default_values={"y": 1})])
    with pytest.raises(InvalidArgument, match="does not fit"):
        engine.to_arrow(
            engine.point_in_time_join(
                spine, [lookup(tables, "f.t", **base, default_values={"x": "text"})]
            )
        )


# -- randomized cases against the reference --------------------------------------------
def _sort_key(value: Any) -> tuple[Any, ...]:
    return (0,) if value is None else (1, value)


def reference(
    spine: list[dict[str, Any]], rows: list[dict[str, Any]], lk: PointInTimeLookup
) -> list[dict[str, Any]]:
    """The contract, row by row: candidates, then the greatest (time, features)."""
    out = []
    for s in spine:
        candidates = []
        for r in rows:
            if any(
                r[k] is None or r[k] != s[sk]
                for k, sk in zip(lk.keys, lk.spine_key_columns, strict=True)
            ):
                continue
            if lk.as_of:
                t, st = r[lk.timestamp or ""], s[lk.spine_timestamp or ""]
                if t is None or st is None or t > st:
                    continue
                if lk.lookback is not None and t < st - lk.lookback:
                    continue
                if lk.written_at is not None:
                    w = r[lk.written_at]
                    if w is None or w > st:
                        continue
            candidates.append(r)
        row = dict(s)
        if candidates:
            best = max(
                candidates,
                key=lambda r: (
                    _sort_key(r[lk.timestamp]) if lk.timestamp else (0,),
                    *(_sort_key(r[f]) for f in lk.features),
                ),
            )
            row.update({o: best[f] for f, o in zip(lk.features, lk.outputs, strict=True)})
        else:
            row.update({o: lk.default_values.get(o) for o in lk.outputs})
        out.append(row)
    return out


def _random_case(
    rng: random.Random, first_id: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A small case whose ids start at ``first_id`` (cases share one table, one join)."""

    def maybe(value: Any, p: float = 0.1) -> Any:
        return None if rng.random() < p else value

    keys = rng.randint(1, 6)
    days = rng.randint(1, 8)
    table = [
        {
            "id": maybe(first_id + rng.randint(0, keys), 0.05),
            "ts": maybe(at(rng.randint(0, days)), 0.05),  # few distinct times: many ties
            "x": maybe(float(rng.randint(0, 3))),
            "s": maybe(rng.choice(["a", "b", "B", "é"])),
            "w": maybe(at(rng.randint(0, days + 2)), 0.05),
        }
        for _ in range(rng.randint(0, 40))
    ]
    spine = [
        {
            "rid": first_id + i,
            "id": maybe(first_id + rng.randint(0, keys + 1), 0.05),
            "t": maybe(at(rng.randint(-1, days + 1)), 0.05),
        }
        for i in range(rng.randint(1, 30))
    ]
    return spine, table


@pytest.mark.parametrize("seed", range(3))
def test_randomized_against_reference(tables: Tables, engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    spine_rows: list[dict[str, Any]] = []
    table_rows: list[dict[str, Any]] = []
    for case in range(8):  # eight independent cases (disjoint ids) in one join
        spine_case, table_case = _random_case(rng, case * 100)
        spine_rows += spine_case
        table_rows += table_case
    tables.write(
        "f.t",
        pa.Table.from_pylist(
            table_rows,
            schema=pa.schema(
                [("id", pa.int64()), ("ts", TS), ("x", pa.float64()), ("s", pa.string()), ("w", TS)]
            ),
        ),
    )
    spine = pa.Table.from_pylist(
        spine_rows, schema=pa.schema([("rid", pa.int64()), ("id", pa.int64()), ("t", TS)])
    )
    variants: list[dict[str, Any]] = [
        {"features": ["x", "s"], "timestamp": "ts", "spine_timestamp": "t"},
        {"features": ["s", "x"], "timestamp": "ts", "spine_timestamp": "t",
         "lookback": timedelta(days=rng.randint(0, 3)), "default_values": {"s": "-"}},
        {"features": ["x"], "timestamp": "ts", "spine_timestamp": "t", "written_at": "w"},
        {"features": ["s", "x"], "timestamp": "ts"},  # latest row whatever the time
        {"features": ["x", "s"]},  # a table without time
    ]  # fmt: skip
    lookups = []
    for i, v in enumerate(variants):
        outputs = [f"{f}{i}" for f in v["features"]]
        defaults = {f"{k}{i}": d for k, d in v.pop("default_values", {}).items()}
        lookups.append(lookup(tables, "f.t", **v, output_names=outputs, default_values=defaults))
    got = result_rows(engine, engine.point_in_time_join(spine, lookups))
    expected = spine_rows
    for lk in lookups:
        expected = reference(expected, table_rows, lk)
    assert got == expected
    latest = result_rows(engine, engine.latest_per_key(tables.resolve("f.t"), ["id"], "ts"), "id")
    ref = reference(
        [{"id": k} for k in sorted({r["id"] for r in table_rows if r["id"] is not None})],
        table_rows,
        PointInTimeLookup(
            table=tables.resolve("f.t"), keys=("id",), timestamp="ts", features=("x", "s", "w"),
            output_names=("x", "s", "w"),
        ),
    )  # fmt: skip
    assert [(r["x"], r["s"], r["w"]) for r in latest] == [(r["x"], r["s"], r["w"]) for r in ref]


def test_partitioned_local_join_matches(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local engine splits large spines by key hash: the answer must not change."""
    from lakeloom.engines import local_pit
    from lakeloom.engines.local import LocalEngine
    from lakeloom.lakehouse.storage import Storage

    engine = LocalEngine()
    tables = Tables(Storage(str(tmp_path)), engine)
    rng = random.Random(9)
    spine_rows: list[dict[str, Any]] = []
    table_rows: list[dict[str, Any]] = []
    for case in range(6):
        spine_case, table_case = _random_case(rng, case * 100)
        spine_rows += spine_case
        table_rows += table_case
    tables.write("f.t", pa.Table.from_pylist(table_rows, schema=pa.schema(
        [("id", pa.int64()), ("ts", TS), ("x", pa.float64()), ("s", pa.string()), ("w", TS)]
    )))  # fmt: skip
    spine = pa.Table.from_pylist(
        spine_rows, schema=pa.schema([("rid", pa.int64()), ("id", pa.int64()), ("t", TS)])
    )
    lk = lookup(tables, "f.t", features=["x", "s"], timestamp="ts", spine_timestamp="t")
    whole = engine.point_in_time_join(spine, [lk])
    monkeypatch.setattr(local_pit, "PARTITION_ROWS", 7)
    assert engine.point_in_time_join(spine, [lk]).equals(whole)
    assert whole.to_pylist() == reference(spine_rows, table_rows, lk)
