"""Profiles as monitoring reads them: which columns, their edges, parsed per group.

Numeric edges come from the baseline: its range cut in equal bins, the first edge at its
minimum and the last just above its maximum, so the counts below the first and above the
last edge are the out-of-range values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from lakeloom.engines.base import TableRef
from lakeloom.monitoring.stats import NUMERIC_BINS, CategoricalProfile, NumericProfile

__all__ = [
    "ColumnKind",
    "Profile",
    "Source",
    "column_kinds",
    "is_identifier",
    "numeric_edges",
    "parse_profile",
]

ColumnKind = str  # "numeric" or "categorical"


@dataclass(frozen=True)
class Source:
    """Rows to profile: a table (read in place, at a version) or an in-memory frame."""

    data: TableRef | pa.Table
    name: str
    version: int | None = None
    filter: str | None = None


@dataclass
class Profile:
    """A parsed profile of one group: row count and each column's statistics."""

    rows: float = 0.0
    numeric: dict[str, NumericProfile] = field(default_factory=dict)
    categorical: dict[str, CategoricalProfile] = field(default_factory=dict)


def is_identifier(name: str) -> bool:
    """Whether a column name looks like an identifier (``id``, ``customer_id``, ``userId``)."""
    lower = name.lower()
    return lower == "id" or lower.endswith("_id") or (name.endswith("Id") and len(name) > 2)


def column_kinds(
    schema: pa.Schema, exclude: Sequence[str] = (), *, identifiers: bool = False
) -> dict[str, ColumnKind]:
    """Numeric (integers, floats, decimals) and categorical (text, booleans) columns.

    Identifier columns (:func:`is_identifier`) are left out unless ``identifiers``.
    """
    out: dict[str, ColumnKind] = {}
    for f in schema:
        if f.name in exclude or (not identifiers and is_identifier(f.name)):
            continue
        t = f.type
        if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            out[f.name] = "categorical"
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            out[f.name] = "numeric"
    return out


def numeric_edges(p: NumericProfile, bins: int = NUMERIC_BINS) -> tuple[float, ...]:
    """``bins`` equal bins over the baseline's range (empty without values)."""
    if p.min is None or p.max is None or not math.isfinite(p.min) or not math.isfinite(p.max):
        return ()
    lo, hi = float(p.min), float(p.max)
    top = float(np.nextafter(hi, math.inf))
    if hi <= lo:
        return (lo, top)
    inner = [lo + (hi - lo) * i / bins for i in range(bins)]
    edges = sorted({*inner, top})
    return tuple(e for e in edges if math.isfinite(e))


def parse_profile(table: pa.Table) -> dict[str | None, Profile]:
    """The profile table of :meth:`Engine.profile`, by group (None: no grouping)."""
    out: dict[str | None, Profile] = {}
    for row in table.to_pylist():
        prof = out.setdefault(row["group"], Profile())
        column, stat, key, value = row["column"], row["stat"], row["key"], row["value"]
        if stat == "rows":
            prof.rows = value or 0.0
            continue
        if stat in ("category", "other", "distinct") or column in prof.categorical:
            cat = prof.categorical.setdefault(column, CategoricalProfile())
            if stat == "category":
                cat.categories[key] = value
            elif stat in ("count", "nulls", "distinct", "other"):
                setattr(cat, stat, value or 0.0)
            continue
        num = prof.numeric.setdefault(column, NumericProfile())
        if stat == "below":
            num.below.append(value or 0.0)
        elif stat in ("count", "nulls"):
            setattr(num, stat, value or 0.0)
        else:
            setattr(num, stat, value)
    # Categorical columns whose first rows were count/nulls were parsed as numeric: move them.
    for prof in out.values():
        for name in list(prof.numeric):
            if name in prof.categorical:
                num = prof.numeric.pop(name)
                prof.categorical[name].count = num.count
                prof.categorical[name].nulls = num.nulls
    return out
