"""Drift and data-quality findings from parsed profiles: one :class:`Finding` per statistic.

Data-quality checks against the baseline, with their alarm levels:

* ``null_rate``: the share of nulls grew by more than :data:`NULL_RATE_INCREASE` (absolute);
* ``out_of_range``: more than :data:`OUT_OF_RANGE_SHARE` of the values lie outside the
  baseline's [min, max];
* ``unseen_categories``: more than :data:`UNSEEN_SHARE` of the values are categories the
  baseline never had (known when the baseline's categories are all listed);
* ``schema``: a compared column changed kind (numeric / categorical), or is missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lakeloom.monitoring.profiles import Profile
from lakeloom.monitoring.stats import categorical_drift, numeric_drift

__all__ = [
    "NULL_RATE_INCREASE",
    "OUT_OF_RANGE_SHARE",
    "UNSEEN_SHARE",
    "Finding",
    "drift_findings",
    "quality_findings",
    "schema_findings",
]

NULL_RATE_INCREASE = 0.05
OUT_OF_RANGE_SHARE = 0.05
UNSEEN_SHARE = 0.01


@dataclass(frozen=True)
class Finding:
    """One statistic of one column against one reference (a row of the drift table)."""

    column: str
    #: ``feature``, ``prediction``, ``quality`` or ``schema``.
    kind: str
    #: ``numeric`` or ``categorical`` (empty for schema findings of a vanished column).
    column_type: str
    #: ``baseline`` or ``previous`` (the previous window).
    reference: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    #: Whether this statistic decides the column's verdict.
    primary: bool
    slice: str | None = None
    detail: str = ""

    @property
    def score(self) -> float:
        """How far past its threshold (> 1 drifted), comparable across methods."""
        if self.p_value is not None:
            return self.threshold / max(self.p_value, 1e-300)
        return self.statistic / self.threshold if self.threshold else float(self.drifted)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "column": self.column,
            "kind": self.kind,
            "column_type": self.column_type,
            "reference": self.reference,
            "slice": self.slice,
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "primary": self.primary,
            "detail": self.detail,
        }


def drift_findings(
    ref: Profile,
    cur: Profile,
    kinds: Mapping[str, str],
    edges: Mapping[str, tuple[float, ...]],
    *,
    reference: str,
    kind_of: Mapping[str, str],
    slice: str | None = None,
) -> list[Finding]:
    """Every drift statistic of every column present in both profiles."""
    out: list[Finding] = []
    for column, column_type in kinds.items():
        if column_type == "numeric":
            a, b = ref.numeric.get(column), cur.numeric.get(column)
            stats = numeric_drift(a, b, edges.get(column, ())) if a and b else []
        else:
            ca, cb = ref.categorical.get(column), cur.categorical.get(column)
            stats = categorical_drift(ca, cb) if ca and cb else []
        out += [
            Finding(
                column=column,
                kind=kind_of.get(column, "feature"),
                column_type=column_type,
                reference=reference,
                method=s.method,
                statistic=s.statistic,
                p_value=s.p_value,
                threshold=s.threshold,
                drifted=s.drifted,
                primary=s.primary,
                slice=slice,
            )
            for s in stats
        ]
    return out


def quality_findings(
    ref: Profile,
    cur: Profile,
    kinds: Mapping[str, str],
    *,
    slice: str | None = None,
) -> list[Finding]:
    """Null rates, out-of-range values and unseen categories of ``cur`` against ``ref``."""
    out: list[Finding] = []

    def add(
        column: str, column_type: str, method: str, value: float, threshold: float, detail: str = ""
    ) -> None:
        out.append(
            Finding(
                column,
                "quality",
                column_type,
                "baseline",
                method,
                value,
                None,
                threshold,
                value > threshold,
                True,
                slice,
                detail,
            )
        )

    for column, column_type in kinds.items():
        a: Any = (ref.numeric if column_type == "numeric" else ref.categorical).get(column)
        b: Any = (cur.numeric if column_type == "numeric" else cur.categorical).get(column)
        if a is None or b is None or b.rows <= 0:
            continue
        base_rate = a.nulls / a.rows if a.rows else 0.0
        rate = b.nulls / b.rows
        add(
            column,
            column_type,
            "null_rate",
            rate - base_rate,
            NULL_RATE_INCREASE,
            json.dumps({"baseline": base_rate, "current": rate}),
        )
        if column_type == "numeric":
            if b.count > 0 and len(b.below) >= 2 and a.count > 0:
                outside = b.below[0] + (b.count - b.below[-1])
                add(
                    column,
                    column_type,
                    "out_of_range",
                    outside / b.count,
                    OUT_OF_RANGE_SHARE,
                    json.dumps({"min": a.min, "max": a.max, "values_outside": outside}),
                )
        elif a.complete and b.count > 0:
            unseen = {k: v for k, v in b.categories.items() if k not in a.categories}
            share = (sum(unseen.values()) + b.other) / b.count
            top = sorted(unseen, key=lambda k: -unseen[k])[:10]
            add(
                column,
                column_type,
                "unseen_categories",
                share,
                UNSEEN_SHARE,
                json.dumps({"categories": top}),
            )
    return out


def schema_findings(
    baseline: Mapping[str, str], current: Mapping[str, str], *, missing_is_alarm: bool
) -> list[Finding]:
    """Columns that changed kind, vanished or appeared (only the first two alarm)."""
    out = []
    for column, kind in baseline.items():
        if column not in current:
            out.append(
                Finding(
                    column,
                    "schema",
                    kind,
                    "baseline",
                    "missing_column",
                    1.0,
                    None,
                    0.5,
                    missing_is_alarm,
                    True,
                    None,
                    "in the baseline only",
                )
            )
        elif current[column] != kind:
            out.append(
                Finding(
                    column,
                    "schema",
                    current[column],
                    "baseline",
                    "type_changed",
                    1.0,
                    None,
                    0.5,
                    True,
                    True,
                    None,
                    f"{kind} in the baseline, {current[column]} now",
                )
            )
    for column, kind in current.items():
        if column not in baseline:
            out.append(
                Finding(
                    column,
                    "schema",
                    kind,
                    "baseline",
                    "new_column",
                    1.0,
                    None,
                    0.5,
                    False,
                    True,
                    None,
                    "not in the baseline",
                )
            )
    return out
