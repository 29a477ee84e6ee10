"""Latency and error rates per route, from a profile of the inference table.

Latency percentiles are read off the counts below fixed, log-spaced edges (0.05 ms to
10 minutes, 12 per decade) with linear interpolation inside a bin: within about 10% of the
exact percentile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakeloom.monitoring.profiles import Profile

__all__ = ["LATENCY_EDGES", "RouteStats", "percentile", "route_stats"]

#: Log-spaced latency edges in milliseconds.
LATENCY_EDGES: tuple[float, ...] = tuple(
    float(x) for x in np.round(np.logspace(math.log10(0.05), math.log10(600_000.0), 85), 6)
)


def percentile(
    below: list[float],
    count: float,
    edges: tuple[float, ...],
    q: float,
    lo: float | None,
    hi: float | None,
) -> float | None:
    """The ``q`` quantile (0-1) from counts below ``edges`` (None without values)."""
    if count <= 0 or not below:
        return None
    target = q * count
    xs = [lo if lo is not None else edges[0], *edges, hi if hi is not None else edges[-1]]
    cum = [0.0, *below, count]
    for i in range(1, len(cum)):
        if cum[i] >= target:
            x0, x1 = xs[i - 1], xs[i]
            c0, c1 = cum[i - 1], cum[i]
            if c1 <= c0:
                return float(x1)
            x0 = max(x0, lo) if lo is not None else x0
            x1 = min(x1, hi) if hi is not None else x1
            return float(x0 + (x1 - x0) * (target - c0) / (c1 - c0))
    return hi


@dataclass(frozen=True)
class RouteStats:
    """Requests, traffic share, error rate and latency of one route."""

    route: str
    rows: int
    share: float
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_mean_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return dict(self.__dict__)


def route_stats(groups: dict[str | None, Profile]) -> list[RouteStats]:
    """Per route (the profile's groups; shadow rows count apart from the share)."""
    served = sum(p.rows for g, p in groups.items() if g != "shadow")
    out = []
    for route, prof in sorted(groups.items(), key=lambda kv: str(kv[0])):
        lat = prof.numeric.get("latency_ms")
        status = prof.categorical.get("status")
        errors = 0.0
        if status is not None:
            errors = sum(n for k, n in status.categories.items() if _is_error(k))
        pcts = [
            percentile(lat.below, lat.count, LATENCY_EDGES, q, lat.min, lat.max)
            if lat is not None
            else None
            for q in (0.5, 0.95, 0.99)
        ]
        out.append(
            RouteStats(
                route=str(route),
                rows=int(prof.rows),
                share=(prof.rows / served) if served and route != "shadow" else 0.0,
                errors=int(errors),
                error_rate=errors / prof.rows if prof.rows else 0.0,
                latency_p50_ms=pcts[0],
                latency_p95_ms=pcts[1],
                latency_p99_ms=pcts[2],
                latency_mean_ms=lat.mean if lat is not None else None,
            )
        )
    return out


def _is_error(status: str) -> bool:
    try:
        return int(float(status)) >= 400
    except ValueError:
        return False
