"""Drift statistics computed from two profiles (never from rows), and their thresholds.

Numeric columns are compared through their counts below fixed edges (the baseline's range
cut in :data:`NUMERIC_BINS` equal bins): the empirical CDFs of both samples are known
exactly at every edge.

* Kolmogorov-Smirnov: ``D`` is the largest CDF difference over the edges. It is a lower
  bound of the exact two-sample statistic, below it by at most the largest bin's mass
  (about 1/``NUMERIC_BINS`` for a smooth column); its p-value is the two-sided asymptotic
  one (``scipy.stats.kstwo`` with ``n·m/(n+m)`` samples), as ``ks_2samp(method="asymp")``.
* Wasserstein (earth mover's) distance: the integral of ``|F_a - F_b|`` with both CDFs
  linear inside each bin, divided by the baseline's standard deviation (Evidently's
  "normed" distance). Exact for data spread evenly inside bins; off by at most one bin
  width divided by the standard deviation otherwise.
* PSI: on about ten groups of adjacent bins holding equal shares of the baseline (deciles).

Categorical columns use the category counts: chi-squared (a 2 x k contingency table), the
Jensen-Shannon distance (natural log, as ``scipy.spatial.distance.jensenshannon``) and PSI.

Which test decides follows Evidently's defaults: with at most :data:`SMALL_SAMPLE` rows in
the reference a statistical test (KS or chi-squared, drift when ``p < 0.05``), above it a
distance (normed Wasserstein or Jensen-Shannon, drift when ``>= 0.1``). PSI is reported for
every column, with its usual alarm level 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "CHI2_P_VALUE",
    "JS_THRESHOLD",
    "KS_P_VALUE",
    "NUMERIC_BINS",
    "PSI_THRESHOLD",
    "SMALL_SAMPLE",
    "WASSERSTEIN_THRESHOLD",
    "CategoricalProfile",
    "DriftStat",
    "NumericProfile",
    "categorical_drift",
    "numeric_drift",
    "psi",
]

#: Reference rows up to which a statistical test decides (above: a distance).
SMALL_SAMPLE = 1000
KS_P_VALUE = 0.05
CHI2_P_VALUE = 0.05
WASSERSTEIN_THRESHOLD = 0.1
JS_THRESHOLD = 0.1
PSI_THRESHOLD = 0.1
#: Equal-width bins the baseline's range is cut into.
NUMERIC_BINS = 100
#: Share floor for empty bins in PSI (Evidently's), so the logarithm stays finite.
_PSI_FLOOR = 1e-4
_PSI_GROUPS = 10


@dataclass
class NumericProfile:
    """One numeric column of one profile (:meth:`Engine.profile` rows)."""

    count: float = 0.0
    nulls: float = 0.0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    #: Counts of values below each edge (same length as the edges profiled).
    below: list[float] = field(default_factory=list)

    @property
    def rows(self) -> float:
        """Values plus nulls."""
        return self.count + self.nulls


@dataclass
class CategoricalProfile:
    """One categorical column of one profile: top categories, the rest, nulls."""

    count: float = 0.0
    nulls: float = 0.0
    distinct: float = 0.0
    categories: dict[str, float] = field(default_factory=dict)
    other: float = 0.0

    @property
    def rows(self) -> float:
        """Values plus nulls."""
        return self.count + self.nulls

    @property
    def complete(self) -> bool:
        """Whether every category is listed (none summed into ``other``)."""
        return self.other == 0


@dataclass(frozen=True)
class DriftStat:
    """One statistic of one column: its value, threshold and verdict."""

    method: Literal["ks", "wasserstein", "psi", "chi2", "jensen_shannon"]
    #: The statistic (KS ``D``, the distance, PSI, chi-squared).
    statistic: float
    #: The p-value of a test (None for distances).
    p_value: float | None
    threshold: float
    drifted: bool
    #: Whether this statistic decides the column's drift (Evidently's rule).
    primary: bool

    @property
    def score(self) -> float:
        """How far past its threshold, comparable across methods (> 1: drifted)."""
        if self.p_value is not None:
            return self.threshold / max(self.p_value, 1e-300)
        return self.statistic / self.threshold if self.threshold else 0.0


def _shares(counts: Sequence[float]) -> np.ndarray:
    arr = np.asarray(counts, dtype=float)
    total = arr.sum()
    return arr / total if total > 0 else arr


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two count vectors over the same buckets."""
    e = np.maximum(_shares(expected), _PSI_FLOOR)
    a = np.maximum(_shares(actual), _PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _bins(p: NumericProfile) -> np.ndarray:
    """Counts per bin: below the first edge, between edges, at or above the last."""
    below = np.asarray(p.below, dtype=float)
    return np.diff(np.concatenate([[0.0], below, [p.count]]))


def _psi_groups(baseline_bins: np.ndarray) -> list[tuple[int, int]]:
    """Adjacent bins merged into about ten groups of equal baseline share."""
    total = baseline_bins.sum()
    groups: list[tuple[int, int]] = []
    start, acc = 0, 0.0
    for i, n in enumerate(baseline_bins):
        acc += n
        if total > 0 and acc >= total / _PSI_GROUPS:
            groups.append((start, i + 1))
            start, acc = i + 1, 0.0
    if start < len(baseline_bins):
        if groups and acc < total / (2 * _PSI_GROUPS):
            groups[-1] = (groups[-1][0], len(baseline_bins))
        else:
            groups.append((start, len(baseline_bins)))
    return groups


def _wasserstein(ref: NumericProfile, cur: NumericProfile, edges: Sequence[float]) -> float:
    # Infinite values sit in the outer bins; their mass counts from the outer edges.
    lo = min(v for v in (ref.min, cur.min, edges[0]) if v is not None and math.isfinite(v))
    hi = max(v for v in (ref.max, cur.max, edges[-1]) if v is not None and math.isfinite(v))
    xs = np.concatenate([[lo], np.asarray(edges, dtype=float), [hi]])
    fa = np.concatenate([[0.0], np.asarray(ref.below) / ref.count, [1.0]])
    fb = np.concatenate([[0.0], np.asarray(cur.below) / cur.count, [1.0]])
    d = fa - fb
    widths = np.diff(xs)
    total = 0.0
    for w, d0, d1 in zip(widths, d[:-1], d[1:], strict=True):
        if w <= 0:
            continue
        if d0 * d1 >= 0:
            total += w * (abs(d0) + abs(d1)) / 2
        else:  # the difference changes sign inside the bin: two triangles
            cut = abs(d0) / (abs(d0) + abs(d1))
            total += w * (cut * abs(d0) + (1 - cut) * abs(d1)) / 2
    norm = max(ref.std or 0.0, 1e-3)
    return total / norm


def numeric_drift(
    ref: NumericProfile, cur: NumericProfile, edges: Sequence[float]
) -> list[DriftStat]:
    """KS, normed Wasserstein and PSI of ``cur`` against ``ref`` (profiled on ``edges``).

    Empty when either side has no values or no edges.
    """
    if ref.count <= 0 or cur.count <= 0 or not edges:
        return []
    from scipy import stats

    small = ref.count <= SMALL_SAMPLE
    fa = np.asarray(ref.below, dtype=float) / ref.count
    fb = np.asarray(cur.below, dtype=float) / cur.count
    d = float(np.max(np.abs(fa - fb)))
    en = max(1, round(ref.count * cur.count / (ref.count + cur.count)))
    p = float(stats.kstwo.sf(d, en))
    w = _wasserstein(ref, cur, edges)
    a, b = _bins(ref), _bins(cur)
    groups = _psi_groups(a)
    value = psi([a[s:e].sum() for s, e in groups], [b[s:e].sum() for s, e in groups])
    return [
        DriftStat("ks", d, p, KS_P_VALUE, p < KS_P_VALUE, small),
        DriftStat(
            "wasserstein", w, None, WASSERSTEIN_THRESHOLD, w >= WASSERSTEIN_THRESHOLD, not small
        ),
        DriftStat("psi", value, None, PSI_THRESHOLD, value >= PSI_THRESHOLD, False),
    ]


def _aligned(
    ref: CategoricalProfile, cur: CategoricalProfile
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both profiles' counts over the same buckets (categories known on both sides)."""
    keys = sorted(set(ref.categories) | set(cur.categories))
    known = [
        k
        for k in keys
        if (k in ref.categories or ref.complete) and (k in cur.categories or cur.complete)
    ]
    a = [ref.categories.get(k, 0.0) for k in known]
    b = [cur.categories.get(k, 0.0) for k in known]
    rest_a, rest_b = ref.count - sum(a), cur.count - sum(b)
    if rest_a > 0 or rest_b > 0:
        known.append("(other)")
        a.append(rest_a)
        b.append(rest_b)
    return known, np.asarray(a, dtype=float), np.asarray(b, dtype=float)


def categorical_drift(ref: CategoricalProfile, cur: CategoricalProfile) -> list[DriftStat]:
    """Chi-squared, Jensen-Shannon distance and PSI of ``cur`` against ``ref``."""
    if ref.count <= 0 or cur.count <= 0:
        return []
    from scipy import stats
    from scipy.spatial import distance

    small = ref.count <= SMALL_SAMPLE
    _, a, b = _aligned(ref, cur)
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    if len(a) < 2:
        chi2, p = 0.0, 1.0
    else:
        result = stats.chi2_contingency(np.vstack([a, b]), correction=False)
        chi2, p = float(result.statistic), float(result.pvalue)
    js = float(distance.jensenshannon(_shares(a), _shares(b)))
    js = 0.0 if math.isnan(js) else js
    value = psi(a, b)
    return [
        DriftStat("chi2", chi2, p, CHI2_P_VALUE, p < CHI2_P_VALUE, small),
        DriftStat("jensen_shannon", js, None, JS_THRESHOLD, js >= JS_THRESHOLD, not small),
        DriftStat("psi", value, None, PSI_THRESHOLD, value >= PSI_THRESHOLD, False),
    ]
