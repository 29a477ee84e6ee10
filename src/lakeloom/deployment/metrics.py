"""``/metrics`` in the Prometheus text format (version 0.0.4), kept in plain counters.

Updated on the event loop thread only (one request at a time runs Python there), so no
locks are needed; the few values other threads own (batch counters, the inference log's
counters, served versions) are read when the page is rendered. With several workers each
process reports its own numbers: Prometheus sums them across scrape targets.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "Metrics", "gauge_lines"]

#: Upper bounds (seconds) of the latency histogram's buckets.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1


def _labels(**labels: str) -> str:
    parts = []
    for key, value in labels.items():
        text = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{key}="{text}"')
    return "{" + ",".join(parts) + "}"


class Metrics:
    """The endpoint's counters, histogram and gauges."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.in_flight = 0
        self.shadow: dict[str, int] = {}
        #: Extra lines, computed when rendered (batches, inference log, served versions).
        self.collectors: list[Callable[[], Iterable[str]]] = []

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one finished request of ``route`` with its status and latency."""
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(route)
        if hist is None:
            hist = self.latency[route] = _Histogram()
        hist.observe(seconds)

    def observe_shadow(self, outcome: str) -> None:
        """Count one shadow scoring (``ok``, ``error`` or ``skipped``)."""
        self.shadow[outcome] = self.shadow.get(outcome, 0) + 1

    def render(self) -> str:
        """The exposition text."""
        ep = self.endpoint
        lines = [
            "# HELP lakeloom_requests_total Scoring requests by route and HTTP status.",
            "# TYPE lakeloom_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            labels = _labels(endpoint=ep, route=route, status=str(status))
            lines.append(f"lakeloom_requests_total{labels} {n}")
        lines += [
            "# HELP lakeloom_request_duration_seconds Scoring request latency by route.",
            "# TYPE lakeloom_request_duration_seconds histogram",
        ]
        for route, hist in sorted(self.latency.items()):
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), hist.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(
                    "lakeloom_request_duration_seconds_bucket"
                    f"{_labels(endpoint=ep, route=route, le=le)} {cumulative}"
                )
            lab = _labels(endpoint=ep, route=route)
            lines.append(f"lakeloom_request_duration_seconds_sum{lab} {hist.total:.6f}")
            lines.append(f"lakeloom_request_duration_seconds_count{lab} {hist.n}")
        lines += [
            "# HELP lakeloom_requests_in_flight Scoring requests being handled now.",
            "# TYPE lakeloom_requests_in_flight gauge",
            f"lakeloom_requests_in_flight{_labels(endpoint=ep)} {self.in_flight}",
            "# HELP lakeloom_shadow_total Shadow scorings by outcome.",
            "# TYPE lakeloom_shadow_total counter",
        ]
        for outcome, n in sorted(self.shadow.items()):
            lines.append(f"lakeloom_shadow_total{_labels(endpoint=ep, outcome=outcome)} {n}")
        for collect in self.collectors:
            lines.extend(collect())
        return "\n".join(lines) + "\n"


def gauge_lines(
    name: str, help_text: str, kind: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    """HELP/TYPE lines and samples of one metric family (for collectors)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        number = int(value) if float(value).is_integer() else value
        lines.append(f"{name}{_labels(**labels)} {number}")
    return lines
