"""The profile contract: both engines return the same statistics, exactly as computed here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lakeloom.engines.base import Engine
from lakeloom.engines.profile_spec import PROFILE_SCHEMA, NumericColumn, ProfileSpec
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables

EDGES = (0.0, 10.0, 20.0, 50.0)


def sample(n: int = 2000, seed: int = 3) -> pa.Table:
    """Numbers (with nulls), a category with a long tail, a boolean and a slice column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(20, 10, n)
    x_list: list[float | None] = [float(v) for v in x]
    for i in range(0, n, 17):
        x_list[i] = None
    for i in range(3, n, 41):
        x_list[i] = float("nan")  # counts as null
    cats = rng.choice(["a", "b", "c", "d", "e"], n, p=[0.4, 0.3, 0.2, 0.07, 0.03])
    plan: list[str | None] = [str(c) for c in cats]
    for i in range(5, n, 31):
        plan[i] = None
    return pa.table(
        {
            "x": pa.array(x_list, pa.float64()),
            "k": pa.array(rng.integers(0, 5, n), pa.int64()),
            "plan": pa.array(plan, pa.string()),
            "flag": pa.array(rng.random(n) < 0.3, pa.bool_()),
            "region": pa.array(rng.choice(["north", "south"], n), pa.string()),
        }
    )


SPEC = ProfileSpec(
    numeric=(NumericColumn("x", EDGES), NumericColumn("k", (1.0, 2.5))),
    categorical=("plan", "flag"),
    top_k=3,
)


def stats(profile: pa.Table) -> dict[tuple[str | None, str, str, str | None], float | None]:
    return {(r["group"], r["column"], r["stat"], r["key"]): r["value"] for r in profile.to_pylist()}


def expected(data: pa.Table) -> dict[tuple[str | None, str, str, str | None], float | None]:
    """The statistics computed in plain Python, from the rows."""
    rows = data.to_pylist()
    out: dict[tuple[str | None, str, str, str | None], float | None] = {
        (None, "", "rows", None): float(len(rows))
    }
    for col in SPEC.numeric:
        values = [float(r[col.name]) for r in rows if r[col.name] is not None]
        values = [v for v in values if not math.isnan(v)]
        out[(None, col.name, "count", None)] = float(len(values))
        out[(None, col.name, "nulls", None)] = float(len(rows) - len(values))
        out[(None, col.name, "min", None)] = min(values)
        out[(None, col.name, "max", None)] = max(values)
        out[(None, col.name, "mean", None)] = float(np.mean(values))
        out[(None, col.name, "std", None)] = float(np.std(values, ddof=1))
        for i, edge in enumerate(col.edges):
            out[(None, col.name, "below", str(i))] = float(sum(v < edge for v in values))
    for name in SPEC.categorical:
        values = [str(r[name]).lower() for r in rows if r[name] is not None]
        counts: dict[str, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[(None, name, "count", None)] = float(len(values))
        out[(None, name, "nulls", None)] = float(len(rows) - len(values))
        out[(None, name, "distinct", None)] = float(len(counts))
        for v, n in ranked[: SPEC.top_k]:
            out[(None, name, "category", v)] = float(n)
        out[(None, name, "other", None)] = float(sum(n for _, n in ranked[SPEC.top_k :]))
    return out


def assert_stats(actual: dict, wanted: dict) -> None:  # type: ignore[type-arg]
    assert set(actual) == set(wanted)
    for key, value in wanted.items():
        got = actual[key]
        if key[2] in ("mean", "std"):
            assert got == pytest.approx(value, rel=1e-9), key
        else:
            assert got == value, key


def test_profile_of_a_frame_matches_python(engine: Engine) -> None:
    data = sample()
    profile = engine.profile(data, SPEC)
    assert profile.schema.equals(PROFILE_SCHEMA)
    assert_stats(stats(profile), expected(data))


def test_profile_of_a_table_in_place_with_filter_and_version(
    engine: Engine, tables: Tables
) -> None:
    data = sample()
    tables.write("raw.sample", data)
    tables.write("raw.sample", sample(300, seed=9), mode="append")
    ref = tables.resolve("raw.sample")
    at_v0 = engine.profile(
        ref, ProfileSpec(numeric=SPEC.numeric, categorical=SPEC.categorical, top_k=3, version=0)
    )
    assert_stats(stats(at_v0), expected(data))
    filtered = engine.profile(
        ref, ProfileSpec(numeric=(NumericColumn("x", EDGES),), filter="k >= 3", version=0)
    )
    keep = data.filter(pa.compute.greater_equal(data["k"], 3))
    got = stats(filtered)
    assert got[(None, "", "rows", None)] == keep.num_rows
    assert got[(None, "x", "below", "1")] == sum(
        1 for v in keep["x"].to_pylist() if v is not None and v < 10.0
    )


def test_profile_by_group_and_identical_across_engines(
    local_engine: Engine, engine: Engine
) -> None:
    data = sample()
    spec = ProfileSpec(
        numeric=SPEC.numeric, categorical=SPEC.categorical, top_k=3, group_by="region"
    )
    mine = engine.profile(data, spec)
    reference = local_engine.profile(data, spec)
    assert mine.column("group").to_pylist() == reference.column("group").to_pylist()
    assert mine.column("stat").to_pylist() == reference.column("stat").to_pylist()
    for a, b in zip(mine.to_pylist(), reference.to_pylist(), strict=True):
        assert a["key"] == b["key"] and a["column"] == b["column"]
        assert a["value"] == pytest.approx(b["value"], rel=1e-9)
    groups = set(mine.column("group").to_pylist())
    assert groups == {"north", "south"}
    north = data.filter(pa.compute.equal(data["region"], "north")).num_rows
    assert stats(mine)[("north", "", "rows", None)] == north


def test_profile_of_empty_and_all_null_data(engine: Engine) -> None:
    empty = pa.table({"x": pa.array([], pa.float64()), "plan": pa.array([], pa.string())})
    spec = ProfileSpec(numeric=(NumericColumn("x", (1.0,)),), categorical=("plan",))
    got = stats(engine.profile(empty, spec))
    assert got[(None, "", "rows", None)] == 0
    assert got[(None, "x", "count", None)] == 0
    assert got[(None, "x", "mean", None)] is None
    assert got[(None, "plan", "other", None)] == 0
    assert got[(None, "plan", "distinct", None)] == 0
    nulls = pa.table({"x": pa.nulls(4, pa.float64()), "plan": pa.nulls(4, pa.string())})
    got = stats(engine.profile(nulls, spec))
    assert got[(None, "x", "nulls", None)] == 4
    assert got[(None, "plan", "nulls", None)] == 4
    assert not math.isnan(got[(None, "x", "below", "0")] or 0.0)


def test_profile_refuses_unknown_columns_and_bad_specs(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(SchemaMismatch, match="nope"):
        engine.profile(sample(10), ProfileSpec(categorical=("nope",)))
    with pytest.raises(InvalidArgument, match="increasing"):
        ProfileSpec(numeric=(NumericColumn("x", (2.0, 1.0)),))
    with pytest.raises(InvalidArgument, match="twice"):
        ProfileSpec(numeric=(NumericColumn("x"),), categorical=("x",))
    with pytest.raises(InvalidArgument, match=r"filter|profile"):
        engine.profile(sample(10), ProfileSpec(categorical=("plan",), filter="no_such_col > 1"))
    assert Tables(Storage(str(tmp_path)), engine).table_names() == []
