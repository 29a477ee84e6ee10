"""A/B analysis of an endpoint's champion and challenger routes, from its inference table.

Per route: traffic share, errors and latency (from a profile of the inference table), and a
metric measured on the requests whose delayed labels arrived (joined in the engine):

=============== ========== ============== ==================================================
metric          kind       better         per labelled request
=============== ========== ============== ==================================================
``accuracy``    proportion higher         prediction (class, or probability >= 0.5) = label
``label_rate``  proportion higher         the label (0/1): a conversion or retention rate
``mae``         mean       lower          ``|prediction - label|``
``label_mean``  mean       higher         the label: a business value (revenue, ...)
=============== ========== ============== ==================================================

Proportions get Wilson score intervals and a two-proportion z-test (pooled); means get
t intervals and Welch's t-test. Not significant at ``alpha``: the samples per route needed
to detect the observed difference with ``power`` (normal approximation) tell whether to
collect more or keep the champion. ``promote=True`` acts on a "promote the challenger"
recommendation through the registry's promotion gate, with the labelled requests as the
holdout: the gate scores both versions again and records its decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakeloom.engines.delta_log import arrow_schema, open_delta
from lakeloom.errors import InvalidArgument
from lakeloom.monitoring.context import MonitorContext
from lakeloom.monitoring.ops import LATENCY_EDGES, RouteStats, route_stats
from lakeloom.monitoring.performance import label_column_of
from lakeloom.monitoring.profiles import parse_profile
from lakeloom.monitoring.result import INFERENCE_META, inference_table
from lakeloom.monitoring.sql_text import quote, timestamp

if TYPE_CHECKING:
    from datetime import timedelta

__all__ = [
    "METRICS",
    "ABReport",
    "Arm",
    "ab_report",
    "mean_test",
    "proportion_test",
    "samples_needed_means",
    "samples_needed_proportions",
    "wilson_interval",
]

#: metric -> (kind, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "accuracy": ("proportion", True),
    "label_rate": ("proportion", True),
    "mae": ("mean", False),
    "label_mean": ("mean", True),
}
#: Labelled requests per route below which no decision is made.
MIN_SAMPLES = 30


def _norm() -> Any:
    from scipy import stats

    return stats.norm


def wilson_interval(successes: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(_norm().ppf(1 - alpha / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (centre - half, centre + half)


def proportion_test(x1: float, n1: float, x2: float, n2: float) -> tuple[float, float]:
    """Two-sided two-proportion z-test (pooled variance): ``(z, p_value)`` for p2 - p1."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return (0.0, 1.0)
    z = (x2 / n2 - x1 / n1) / se
    return (z, float(2 * _norm().sf(abs(z))))


def mean_test(
    m1: float, v1: float, n1: float, m2: float, v2: float, n2: float
) -> tuple[float, float]:
    """Welch's t-test from summary statistics: ``(t, p_value)`` for m2 - m1."""
    from scipy import stats

    if v1 + v2 <= 0:
        return (0.0, 1.0)
    result = stats.ttest_ind_from_stats(
        m2, math.sqrt(v2), n2, m1, math.sqrt(v1), n1, equal_var=False
    )
    return (float(result.statistic), float(result.pvalue))


def samples_needed_proportions(
    p1: float, p2: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Samples per route for a two-sided z-test to detect ``p2 - p1`` with ``power``."""
    if p1 == p2:
        return math.inf
    norm = _norm()
    za, zb = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    pbar = (p1 + p2) / 2
    top = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return (top / (p2 - p1)) ** 2


def samples_needed_means(
    delta: float, variance: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Samples per route to detect a mean difference ``delta`` (common ``variance``)."""
    if delta == 0:
        return math.inf
    norm = _norm()
    za, zb = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    return 2 * (za + zb) ** 2 * variance / (delta * delta)


@dataclass(frozen=True)
class Arm:
    """One route of the test: its traffic and its metric."""

    route: str
    model_name: str | None
    model_version: int | None
    traffic: RouteStats | None
    labelled: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    variance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "route": self.route,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "traffic": self.traffic.to_dict() if self.traffic else None,
            "labelled": self.labelled,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }


@dataclass
class ABReport:
    """The comparison of two routes and what to do about it."""

    endpoint: str
    metric: str
    champion: Arm
    challenger: Arm
    test: str
    statistic: float | None
    p_value: float | None
    difference: float | None
    alpha: float
    power: float
    samples_needed: float | None
    more_samples: int | None
    recommendation: str
    reason: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    gate: dict[str, Any] | None = field(default=None)
    promoted: bool | None = None

    @property
    def exit_code(self) -> int:
        """0, or 1 when a promotion was asked for and did not happen."""
        return 1 if self.promoted is False else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "endpoint": self.endpoint,
            "metric": self.metric,
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict(),
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "difference": self.difference,
            "alpha": self.alpha,
            "power": self.power,
            "samples_needed_per_route": (
                None
                if self.samples_needed is None or math.isinf(self.samples_needed)
                else math.ceil(self.samples_needed)
            ),
            "more_samples": self.more_samples,
            "recommendation": self.recommendation,
            "reason": self.reason,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "gate": self.gate,
            "promoted": self.promoted,
        }


def _value_sql(metric: str, p: str, y: str) -> str:
    if metric == "accuracy":
        return f"CASE WHEN (CASE WHEN {p} >= 0.5 THEN 1 ELSE 0 END) = {y} THEN 1.0 ELSE 0.0 END"
    if metric == "mae":
        return f"ABS({p} - {y})"
    return y


def ab_report(
    ctx: MonitorContext,
    endpoint: str,
    *,
    metric: str,
    labels: str,
    join_key: str,
    label_column: str | None = None,
    champion: str = "champion",
    challenger: str = "challenger",
    window: timedelta | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    promote: bool = False,
    alias: str = "production",
) -> ABReport:
    """Compare ``challenger`` with ``champion`` on ``metric``; recommend; optionally promote.

    >>> ab = ab_report(ctx, "churn", metric="accuracy", labels="raw.churn_labels",
    ...                join_key="customer_id")  # doctest: +SKIP
    >>> ab.recommendation  # doctest: +SKIP
    'collect_more'
    """
    if metric not in METRICS:
        raise InvalidArgument(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise InvalidArgument(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    target = inference_table(endpoint)
    ref = ctx.tables.resolve(target)
    schema = arrow_schema(open_delta(ref))
    if join_key not in schema.names:
        raise InvalidArgument(
            f"{target} has no column {join_key!r} to join the labels on (the endpoint's "
            "requests must carry it as an input column)"
        )
    label_schema = arrow_schema(open_delta(ctx.tables.resolve(labels)))
    label = label_column_of(label_schema, join_key, label_column)
    kind, higher = METRICS[metric]

    def q(name: str) -> str:
        return quote(name, ctx.engine.name)

    start = end = None
    time_filter = ""
    plain_filter: str | None = None
    if window is not None:
        latest = ctx.engine.to_arrow(ctx.tables.sql(f"select max({q('time')}) as t from {target}"))
        end = latest.column("t")[0].as_py()
        if end is None:
            raise InvalidArgument(f"{target} has no rows")
        start = end - window
        span = f"{q('time')} > {timestamp(start)} AND {q('time')} <= {timestamp(end)}"
        plain_filter = span
        time_filter = " AND " + span.replace(q("time"), "i." + q("time"))
    routes_sql = f"'{champion.replace(chr(39), '')}', '{challenger.replace(chr(39), '')}'"
    p, y = "CAST(i.prediction AS DOUBLE)", "CAST(l.y AS DOUBLE)"
    value = _value_sql(metric, p, y)
    query = (
        f"SELECT i.route AS route, MAX(i.model_name) AS model_name, "
        f"MAX(i.model_version) AS model_version, COUNT(*) AS n, AVG({value}) AS mean, "
        f"VAR_SAMP({value}) AS var FROM {target} i JOIN (SELECT {q(join_key)} AS k, "
        f"MAX({q(label)}) AS y FROM {labels} WHERE {q(label)} IS NOT NULL "
        f"GROUP BY {q(join_key)}) l ON i.{q(join_key)} = l.k WHERE i.status = 200 AND "
        f"i.route IN ({routes_sql}) AND {p} IS NOT NULL{time_filter} GROUP BY i.route"
    )
    stats = {r["route"]: r for r in ctx.engine.to_arrow(ctx.tables.sql(query)).to_pylist()}
    from lakeloom.engines.profile_spec import NumericColumn, ProfileSpec

    ops = route_stats(
        parse_profile(
            ctx.engine.profile(
                ref,
                ProfileSpec(
                    numeric=(NumericColumn("latency_ms", LATENCY_EDGES),),
                    categorical=("status",),
                    group_by="route",
                    filter=plain_filter,
                ),
            )
        )
    )
    traffic = {r.route: r for r in ops}
    arms = []
    for route in (champion, challenger):
        row = stats.get(route)
        if route not in traffic and row is None:
            raise InvalidArgument(
                f"{target} has no request answered by route {route!r}; routes: "
                f"{', '.join(sorted(traffic)) or 'none'}"
            )
        n = int(row["n"]) if row else 0
        mean = float(row["mean"]) if row and row["mean"] is not None else None
        var = float(row["var"]) if row and row["var"] is not None else None
        lo: float | None = None
        hi: float | None = None
        if kind == "proportion" and mean is not None:
            if mean < 0 or mean > 1:
                raise InvalidArgument(f"metric {metric} needs 0/1 values; the mean is {mean}")
            lo, hi = wilson_interval(mean * n, n, alpha)
        elif mean is not None and var is not None and n > 1:
            from scipy import stats as sps

            half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * math.sqrt(var / n)
            lo, hi = mean - half, mean + half
        arms.append(
            Arm(
                route,
                row["model_name"] if row else None,
                int(row["model_version"]) if row and row["model_version"] is not None else None,
                traffic.get(route),
                n,
                mean,
                lo,
                hi,
                var,
            )
        )
    a, b = arms
    report = ABReport(
        endpoint,
        metric,
        a,
        b,
        "",
        None,
        None,
        None,
        alpha,
        power,
        None,
        None,
        "collect_more",
        "",
        start,
        end,
    )
    _decide(report, kind, higher)
    if promote:
        _promote(ctx, report, target, labels, join_key, label, schema.names, time_filter, alias)
    return report


def _decide(report: ABReport, kind: str, higher: bool) -> None:
    a, b = report.champion, report.challenger
    if a.value is None or b.value is None or min(a.labelled, b.labelled) < 2:
        report.test = "none"
        report.recommendation = "collect_more"
        report.reason = "too few labelled requests on a route to compare"
        report.more_samples = max(MIN_SAMPLES - a.labelled, 0) + max(MIN_SAMPLES - b.labelled, 0)
        return
    report.difference = b.value - a.value
    if kind == "proportion":
        report.test = "two-proportion z-test"
        report.statistic, report.p_value = proportion_test(
            a.value * a.labelled, a.labelled, b.value * b.labelled, b.labelled
        )
        needed = samples_needed_proportions(a.value, b.value, report.alpha, report.power)
    else:
        report.test = "Welch t-test"
        report.statistic, report.p_value = mean_test(
            a.value, a.variance or 0.0, a.labelled, b.value, b.variance or 0.0, b.labelled
        )
        needed = samples_needed_means(
            report.difference,
            ((a.variance or 0.0) + (b.variance or 0.0)) / 2,
            report.alpha,
            report.power,
        )
    report.samples_needed = needed
    better = report.difference > 0 if higher else report.difference < 0
    enough = min(a.labelled, b.labelled) >= MIN_SAMPLES
    if enough and report.p_value < report.alpha:
        report.recommendation = "promote_challenger" if better else "keep_champion"
        report.reason = (
            f"the challenger is {'better' if better else 'worse'} "
            f"(p = {report.p_value:.3g} < {report.alpha})"
        )
        report.more_samples = 0
        return
    current = min(a.labelled, b.labelled)
    if math.isinf(needed) or needed > 100 * max(current, MIN_SAMPLES):
        report.recommendation = "keep_champion"
        report.reason = (
            "no meaningful difference: detecting it would take over 100 times the "
            "labelled requests collected so far"
        )
        report.more_samples = None
        return
    target = max(math.ceil(needed), MIN_SAMPLES)
    report.recommendation = "collect_more"
    report.more_samples = max(target - a.labelled, 0) + max(target - b.labelled, 0)
    report.reason = (
        f"not significant yet (p = {report.p_value:.3g}); about {target} labelled requests "
        f"per route detect this difference with power {report.power}"
    )


def _promote(
    ctx: MonitorContext,
    report: ABReport,
    target: str,
    labels: str,
    join_key: str,
    label: str,
    columns: list[str],
    time_filter: str,
    alias: str,
) -> None:
    b = report.challenger
    if report.recommendation != "promote_challenger":
        report.promoted = False
        return
    if b.model_name is None or b.model_version is None:
        raise InvalidArgument("the challenger's requests do not name a registered model version")
    from lakeloom.tracking.registry import Registry

    registry = Registry(ctx.tracking, ctx.tables, ctx.engine)
    candidate = registry.version(b.model_name, b.model_version)
    label_name = candidate.tags.get("lakeloom.label") or label
    inputs = [c for c in columns if c not in INFERENCE_META]

    def q(name: str) -> str:
        return quote(name, ctx.engine.name)

    select = ", ".join(f"i.{q(c)} AS {q(c.removeprefix('input_'))}" for c in inputs)
    holdout = ctx.engine.to_arrow(
        ctx.tables.sql(
            f"SELECT {select}, l.y AS {q(label_name)} FROM {target} i JOIN (SELECT "
            f"{q(join_key)} AS k, MAX({q(label)}) AS y FROM {labels} GROUP BY {q(join_key)}) l "
            f"ON i.{q(join_key)} = l.k WHERE i.status = 200 AND i.route IN "
            f"('{report.champion.route}', '{b.route}'){time_filter}"
        )
    )
    result = registry.gate(
        b.model_name,
        candidate=b.model_version,
        holdout=holdout,
        alias=alias,
        label=label_name,
        reason=f"A/B on {report.endpoint}: {report.reason}",
    )
    report.gate = result.to_dict()
    report.promoted = result.promoted
