"""What :meth:`Engine.profile` computes, and the one SQL text both engines run for it.

A profile is a small long-format Arrow table (:data:`PROFILE_SCHEMA`), one row per statistic:

=========== ============ ==================================================================
column      stat         value
=========== ============ ==================================================================
``""``      ``rows``     rows (after ``filter``), per group
numeric     ``count``    non-null values; ``nulls`` the null ones (NaN counts as null)
numeric     ``min`` ...  ``min``, ``max``, ``mean``, ``std`` (sample), null without values
numeric     ``below``    values ``< edges[i]`` (``key`` is ``i``): the CDF at each fixed edge
categorical ``count``    non-null values; ``nulls`` the null ones; ``distinct`` distinct ones
categorical ``category`` the count of the value ``key`` (the ``top_k`` most frequent; ties by
                         value, ascending)
categorical ``other``    the count of every other value
=========== ============ ==================================================================

Counts at fixed edges (a cumulative histogram) are what two profiles need to be compared
(KS, Wasserstein, PSI) without the rows; they are exact integers, so both engines give the
same numbers. ``mean`` and ``std`` are floating-point sums whose order differs between
engines: equal to about 1e-12 relative.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lakeloom.errors import InvalidArgument

__all__ = [
    "PROFILE_SCHEMA",
    "NumericColumn",
    "ProfilePlan",
    "ProfileSpec",
    "profile_plan",
    "profile_rows",
]

#: The profile's columns (``group`` is the ``group_by`` value as text; null without one).
PROFILE_SCHEMA = pa.schema(
    [
        ("group", pa.string()),
        ("column", pa.string()),
        ("stat", pa.string()),
        ("key", pa.string()),
        ("value", pa.float64()),
    ]
)

_MAX_EDGES = 512


@dataclass(frozen=True)
class NumericColumn:
    """A numeric column to profile, with the edges its cumulative counts are taken at."""

    name: str
    #: Increasing, finite edges; ``below`` counts are taken at each (may be empty).
    edges: tuple[float, ...] = ()


@dataclass(frozen=True)
class ProfileSpec:
    """What to profile: numeric columns (with edges) and categorical columns (top-k).

    >>> ProfileSpec(numeric=(NumericColumn("spend", (0.0, 10.0, 20.0)),),
    ...             categorical=("plan",), top_k=20)  # doctest: +SKIP
    """

    numeric: tuple[NumericColumn, ...] = ()
    categorical: tuple[str, ...] = ()
    #: Categories kept by name per column (the rest are summed into ``other``).
    top_k: int = 50
    #: A SQL boolean expression the profiled rows satisfy (DuckDB and Spark SQL alike).
    filter: str | None = None
    #: A column whose values split the profile into groups (slices); None: one group.
    group_by: str | None = None
    #: The table version, when ``data`` is a table reference (None: the latest).
    version: int | None = None
    #: Columns in the order they are reported (filled in by ``__post_init__``).
    columns: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise InvalidArgument(f"top_k must be >= 1, got {self.top_k}")
        names = [c.name for c in self.numeric] + list(self.categorical)
        if len(set(names)) != len(names):
            raise InvalidArgument(f"a column is profiled twice: {names}")
        for col in self.numeric:
            if len(col.edges) > _MAX_EDGES:
                raise InvalidArgument(
                    f"column {col.name!r} has {len(col.edges)} edges; at most {_MAX_EDGES}"
                )
            if any(not math.isfinite(e) for e in col.edges) or any(
                b <= a for a, b in zip(col.edges, col.edges[1:], strict=False)
            ):
                raise InvalidArgument(f"edges of column {col.name!r} must be finite and increasing")
        object.__setattr__(self, "columns", tuple(names))

    def check_columns(self, available: Sequence[str], where: str) -> None:
        """Raise ``SchemaMismatch`` naming the profiled columns ``available`` lacks."""
        from lakeloom.errors import SchemaMismatch

        wanted = [*self.columns, *([self.group_by] if self.group_by else [])]
        missing = [c for c in wanted if c not in available]
        if missing:
            raise SchemaMismatch(
                f"{where} has no column(s) {', '.join(map(repr, missing))}; "
                f"its columns: {', '.join(available)}"
            )


def _number(x: float) -> str:
    return f"CAST({float(x)!r} AS DOUBLE)"


@dataclass(frozen=True)
class ProfilePlan:
    """The queries of a profile, and what each aggregate of the first one is."""

    queries: list[str]
    labels: list[tuple[str, str, str | None]]


def profile_plan(spec: ProfileSpec, source: str, quote: Callable[[str], str]) -> ProfilePlan:
    """The SQL queries (one scan for all numeric stats, one per categorical column).

    ``source`` names the rows (a view); ``quote`` quotes an identifier for the engine. Every
    query returns ``group, column, stat, key, value`` rows. The texts are plain SQL that
    DuckDB and Spark read alike.
    """
    where = f" WHERE {spec.filter}" if spec.filter else ""
    group = f"CAST({quote(spec.group_by)} AS STRING)" if spec.group_by else "CAST(NULL AS STRING)"
    group_clause = " GROUP BY 1" if spec.group_by else ""
    aggs = ["CAST(COUNT(*) AS DOUBLE)"]
    labels: list[tuple[str, str, str | None]] = [("", "rows", None)]
    for col in spec.numeric:
        x = f"CAST({quote(col.name)} AS DOUBLE)"
        q = f"(CASE WHEN ISNAN({x}) THEN NULL ELSE {x} END)"  # NaN counts as null
        aggs += [
            f"CAST(COUNT({q}) AS DOUBLE)",
            f"CAST(COUNT(*) - COUNT({q}) AS DOUBLE)",
            f"MIN({q})",
            f"MAX({q})",
            f"AVG({q})",
            f"STDDEV_SAMP({q})",
        ]
        labels += [(col.name, s, None) for s in ("count", "nulls", "min", "max", "mean", "std")]
        for i, edge in enumerate(col.edges):
            aggs.append(f"CAST(SUM(CASE WHEN {q} < {_number(edge)} THEN 1 ELSE 0 END) AS DOUBLE)")
            labels.append((col.name, "below", str(i)))
    for name in spec.categorical:
        q = quote(name)
        aggs += [f"CAST(COUNT({q}) AS DOUBLE)", f"CAST(COUNT(*) - COUNT({q}) AS DOUBLE)"]
        labels += [(name, s, None) for s in ("count", "nulls")]
    # One wide row per group, unpivoted by the caller (``profile_rows``): a stack of
    # thousands of UNIONs would plan slowly on both engines.
    select = ", ".join(f"{a} AS a{i}" for i, a in enumerate(aggs))
    queries = [f"SELECT {group} AS g, {select} FROM {source}{where}{group_clause}"]
    for name in spec.categorical:
        q = quote(name)
        value = f"CAST({q} AS STRING)"
        counts = (
            f"SELECT {group} AS g, {value} AS v, COUNT(*) AS n FROM {source}{where}"
            f"{' AND ' if where else ' WHERE '}{q} IS NOT NULL GROUP BY 1, 2"
        )
        ranked = (
            f"SELECT g, v, n, ROW_NUMBER() OVER (PARTITION BY g ORDER BY n DESC, v ASC) AS r "
            f"FROM ({counts}) c"
        )
        queries.append(
            f"SELECT g, CASE WHEN r <= {int(spec.top_k)} THEN v END AS v, "
            f"CAST(SUM(n) AS DOUBLE) AS n, CAST(COUNT(*) AS DOUBLE) AS d FROM ({ranked}) k "
            f"GROUP BY g, CASE WHEN r <= {int(spec.top_k)} THEN v END"
        )
    return ProfilePlan(queries, labels)


def profile_rows(spec: ProfileSpec, plan: ProfilePlan, results: Sequence[pa.Table]) -> pa.Table:
    """The :data:`PROFILE_SCHEMA` table from the results of :func:`profile_plan`'s queries.

    Rows are sorted by group, column (in ``spec`` order), stat and key, so both engines
    return the same table.
    """
    labels = plan.labels
    order = {name: i for i, name in enumerate(("", *spec.columns))}
    out: list[tuple[str | None, str, str, str | None, float | None]] = []
    wide = results[0]
    for row in wide.to_pylist():
        g = row["g"]
        for i, (column, stat, key) in enumerate(labels):
            value = row[f"a{i}"]
            out.append((g, column, stat, key, None if value is None else float(value)))
    for name, table in zip(spec.categorical, results[1:], strict=True):
        distinct: dict[str | None, float] = {}
        for row in table.to_pylist():
            distinct[row["g"]] = distinct.get(row["g"], 0.0) + float(row["d"])
            if row["v"] is None:
                out.append((row["g"], name, "other", None, float(row["n"])))
            else:
                out.append((row["g"], name, "category", row["v"], float(row["n"])))
        out += [(g, name, "distinct", None, d) for g, d in distinct.items()]
    groups = {r[0] for r in out}
    for name in spec.categorical:  # every group reports these, 0 when there is no value
        for stat in ("other", "distinct"):
            have = {r[0] for r in out if r[1] == name and r[2] == stat}
            out += [(g, name, stat, None, 0.0) for g in sorted(groups - have, key=str)]

    def sort_key(r: tuple[str | None, str, str, str | None, float | None]) -> tuple[object, ...]:
        key = r[3]
        numeric_key = int(key) if r[2] == "below" and key is not None else 0
        return (r[0] is not None, r[0] or "", order[r[1]], r[2], numeric_key, key or "")

    out.sort(key=sort_key)
    cols: list[tuple[Any, ...]] = list(zip(*out, strict=True)) if out else [()] * 5
    return pa.table(
        {f.name: pa.array(list(c), f.type) for f, c in zip(PROFILE_SCHEMA, cols, strict=True)},
        schema=PROFILE_SCHEMA,
    )
