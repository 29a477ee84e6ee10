"""``Engine.map_batches`` and SQL functions: the same results on each engine.

``map_batches`` streams Arrow batches through a function (locally on a bounded queue, on
Spark with ``mapInArrow``); its result writes to a table in one commit on both engines.
SQL functions (:class:`~lakeloom.engines.base.SqlFunction`) are called as
``name('key', *)`` or ``name('key', col, ...)``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakeloom.engines.base import BatchFn, Engine, RowFunction, SqlFunction
from lakeloom.errors import InvalidArgument
from lakeloom.lakehouse.tables import Tables

OUT = pa.schema([("id", pa.int64()), ("label", pa.string()), ("double", pa.float64())])


def people(n: int) -> pa.Table:
    ids = list(range(1, n + 1))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f"n{i}" for i in ids], pa.string()),
            "score": pa.array([i * 0.5 for i in ids], pa.float64()),
        }
    )


def _label_and_double() -> BatchFn:
    # Defined in a function: cloudpickle ships it by value (Spark's workers cannot import
    # test modules).
    def fn(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [
                batch.column("id"),
                pc.binary_join_element_wise(batch.column("name"), pa.scalar("!"), ""),
                pc.multiply(batch.column("score"), 2.0),
            ],
            names=["id", "label", "double"],
        )

    return fn


label_and_double = _label_and_double()


def sorted_rows(engine: Engine, frame: object) -> list[dict[str, object]]:
    table = engine.to_arrow(frame)
    return table.sort_by("id").to_pylist() if table.num_rows else []


def test_map_batches_over_a_table(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people(50))
    mapped = engine.map_batches(tables.read("raw.people"), label_and_double, OUT)
    got = engine.to_arrow(mapped)
    assert got.schema.equals(OUT)
    assert sorted_rows(engine, got) == [
        {"id": i, "label": f"n{i}!", "double": float(i)} for i in range(1, 51)
    ]


def test_map_batches_result_writes_in_one_commit(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people(30))
    ref = tables.ref("out.mapped")
    mapped = engine.map_batches(tables.read("raw.people"), label_and_double, OUT)
    assert engine.write(ref, mapped, mode="overwrite") == 0
    assert tables.version("out.mapped") == 0
    assert [r["double"] for r in sorted_rows(engine, tables.read("out.mapped"))] == [
        float(i) for i in range(1, 31)
    ]


def test_map_batches_casts_to_the_schema_and_may_filter(tables: Tables, engine: Engine) -> None:
    schema = pa.schema([("id", pa.int64()), ("even", pa.bool_())])

    def evens(batch: pa.RecordBatch) -> pa.RecordBatch:
        keep = batch.filter(pc.equal(pc.bit_wise_and(batch.column("id"), 1), 0))
        return pa.RecordBatch.from_arrays(
            [keep.column("id").cast(pa.int32()), pa.array([True] * keep.num_rows)],
            names=["id", "even"],
        )

    tables.write("raw.people", people(10))
    got = engine.to_arrow(engine.map_batches(tables.read("raw.people"), evens, schema))
    assert got.schema.equals(schema)
    assert sorted_rows(engine, got) == [{"id": i, "even": True} for i in (2, 4, 6, 8, 10)]


def test_map_batches_accepts_pandas_input(engine: Engine) -> None:
    frame = people(5).to_pandas()
    got = sorted_rows(engine, engine.map_batches(frame, label_and_double, OUT))
    assert [r["label"] for r in got] == [f"n{i}!" for i in range(1, 6)]


def test_a_failing_function_writes_nothing(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people(20))
    tables.write("out.mapped", engine.map_batches(people(3), label_and_double, OUT))

    def broken(batch: pa.RecordBatch) -> pa.RecordBatch:
        raise RuntimeError("the model exploded")

    mapped = engine.map_batches(tables.read("raw.people"), broken, OUT)
    with pytest.raises(Exception, match="the model exploded"):
        engine.write(tables.ref("out.mapped"), mapped, mode="overwrite")
    assert tables.version("out.mapped") == 0
    assert len(sorted_rows(engine, tables.read("out.mapped"))) == 3


# -- SQL functions ---------------------------------------------------------------------
def _bind(key: str) -> RowFunction:
    factor = float(key)  # the weigh function below is nested: it pickles by value

    def weigh(rows: pa.Table) -> pa.Array:
        return pc.multiply(rows.column("score"), factor)

    return RowFunction(weigh, pa.float64())


WEIGH = SqlFunction("weigh", _bind)


def test_sql_function_with_star_and_with_columns(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people(4))
    for form in ("*", "score", "id, score"):
        result = engine.sql(
            f"select id, weigh('10', {form}) as w from raw.people", tables, functions=[WEIGH]
        )
        assert sorted_rows(engine, result) == [{"id": i, "w": i * 5.0} for i in range(1, 5)]


def test_sql_function_bound_once_per_key(tables: Tables, engine: Engine) -> None:
    tables.write("raw.people", people(2))
    result = engine.sql(
        "select id, WEIGH('2', *) as a, weigh('3', *) as b, 'weigh(x)' as s "
        "from raw.people -- weigh('no', *)",
        tables,
        functions=[WEIGH],
    )
    assert sorted_rows(engine, result) == [
        {"id": 1, "a": 1.0, "b": 1.5, "s": "weigh(x)"},
        {"id": 2, "a": 2.0, "b": 3.0, "s": "weigh(x)"},
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("weigh(score, *)", "must be a string literal"),
        ("weigh('2')", "needs the row's columns"),
        ("weigh('2', *, id)", "either \\* or a list"),
    ],
)
def test_sql_function_bad_calls(tables: Tables, engine: Engine, call: str, message: str) -> None:
    tables.write("raw.people", people(2))
    with pytest.raises(InvalidArgument, match=message):
        engine.sql(f"select {call} from raw.people", tables, functions=[WEIGH])
