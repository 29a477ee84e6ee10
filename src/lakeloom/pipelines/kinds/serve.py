"""The ``serve_demo`` step kind: a real endpoint on a free local port, traffic, a short report.

It starts an endpoint with a champion route (and optionally a challenger and a shadow),
sends ``requests`` requests built from rows of ``data``, then, when ``drift_requests`` is
set, a second batch with drift injected, prints how many requests each route answered and
their latencies, writes the inference table ``lakeloom.inference_<endpoint>`` and stops the
endpoint.

    [[steps]]
    name = "serve"
    kind = "serve_demo"
    champion = "models:/churn@production"
    challenger = "models:/churn@challenger"
    data = "ml.churn_training"
    requests = 500
    drift_requests = 300

Requests carry the columns every route requires (for a feature-aware model: its entity
keys; its features come from the online store, so publish the feature tables first).

The drift batch (request ids ``drift-<run>-<n>``, the normal ones ``req-<run>-<n>``) changes
three columns of the same kind of rows, chosen among the champion's inputs that ``data`` has
unless named:

* ``drift_numeric`` (a numeric column): shifted up by two standard deviations;
* ``drift_category`` (a string column): half the values replaced by ``new_category``;
* ``drift_nulls`` (a double or string column): 40% of the values null. For a feature-aware
  champion, whose nulls mean "look the feature up", 40% of the drift rows carry entity keys
  the online store does not have instead: their looked-up features are null (or the
  lookups' defaults), as for customers whose features were never published.

For a feature-aware champion, the shifted and recategorised columns are sent with the keys
and override the online values; the inference table logs the features as scored.
"""

from __future__ import annotations

import math
import statistics
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lakeloom.errors import InvalidArgument
from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = ["ServeDemoParams", "serve_demo"]

_NUMERIC = ("double", "float", "long", "integer")
_NULLABLE = ("double", "float", "string")
NEW_CATEGORY = "new_category"
#: Share of drift rows that get a null (or, feature-aware, an unknown key).
NULL_SHARE = 0.4


@dataclass(frozen=True)
class ServeDemoParams:
    """Keys of a ``serve_demo`` step."""

    champion: str
    #: The table whose rows become requests.
    data: str
    endpoint: str = "churn"
    challenger: str | None = None
    champion_weight: float = 90.0
    challenger_weight: float = 10.0
    shadow: str | None = None
    requests: int = 500
    concurrency: int = 8
    rows_per_request: int = 1
    #: Requests of a second batch with drift injected (0: none).
    drift_requests: int = 0
    drift_numeric: str | None = None
    drift_category: str | None = None
    drift_nulls: str | None = None

    def __post_init__(self) -> None:
        if self.requests < 1 or self.concurrency < 1 or self.rows_per_request < 1:
            raise ValueError("keys 'requests', 'concurrency' and 'rows_per_request' must be >= 1")
        if self.drift_requests < 0:
            raise ValueError("key 'drift_requests' must be >= 0")
        if self.champion_weight < 0 or self.challenger_weight < 0:
            raise ValueError("route weights must not be negative")


def _config(params: ServeDemoParams) -> dict[str, Any]:
    routes = [{"name": "champion", "model": params.champion, "weight": params.champion_weight}]
    if params.challenger:
        routes.append(
            {"name": "challenger", "model": params.challenger, "weight": params.challenger_weight}
        )
    data: dict[str, Any] = {
        "name": params.endpoint,
        "routes": routes,
        "inference_table": {"flush_interval": "0.5s"},
    }
    if params.shadow:
        data["shadow"] = {"model": params.shadow}
    return data


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class _Drift:
    """The drift to inject: which columns, and how."""

    numeric: str | None
    shift: float
    integer: bool
    category: str | None
    nulls: str | None
    #: Feature-aware champion: null spike by unknown keys (key column, its type).
    unknown_key: tuple[str, str] | None

    def describe(self) -> str:
        parts = []
        if self.numeric:
            parts.append(f"{self.numeric} +{self.shift:.3g}")
        if self.category:
            parts.append(f"{self.category} {NEW_CATEGORY!r}")
        if self.nulls:
            parts.append(f"{self.nulls} {NULL_SHARE:.0%} null")
        if self.unknown_key:
            parts.append(f"{NULL_SHARE:.0%} unknown {self.unknown_key[0]}")
        return ", ".join(parts) or "no column to drift"

    def apply(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for i, source in enumerate(rows):
            row = dict(source)
            value = row.get(self.numeric) if self.numeric else None
            if self.numeric and isinstance(value, int | float) and not isinstance(value, bool):
                shifted = value + self.shift
                row[self.numeric] = round(shifted) if self.integer else shifted
            if self.category and i % 2 == 0:
                row[self.category] = NEW_CATEGORY
            spike = i % 10 < NULL_SHARE * 10
            if self.nulls and spike:
                row[self.nulls] = None
            if self.unknown_key and spike:
                column, kind = self.unknown_key
                row[column] = f"unknown-{i}" if kind == "string" else -1_000_000_000 - i
            out.append(row)
        return out


def _pick(
    named: str | None, inputs: list[dict[str, Any]], kinds: tuple[str, ...], taken: set[str]
) -> str | None:
    if named is not None:
        if named not in {c["name"] for c in inputs}:
            raise InvalidArgument(f"drift column {named!r} is not an input of the champion")
        return named
    for c in inputs:
        if c["type"] in kinds and c["name"] not in taken:
            return str(c["name"])
    return None


def _drift(
    params: ServeDemoParams,
    champion: dict[str, Any],
    sample: Any,
) -> _Drift:
    """The drift for ``champion`` (its ``/ready`` entry) over ``sample`` (an Arrow table)."""
    table_columns = list(sample.column_names)
    aware = "feature_aware" in champion
    keys = set(champion["feature_aware"]["keys"]) if aware else set()
    inputs = [
        c for c in champion["inputs"] or [] if c["name"] in table_columns and c["name"] not in keys
    ]
    taken: set[str] = set()
    numeric = _pick(params.drift_numeric, inputs, _NUMERIC, taken)
    taken.add(numeric or "")
    category = _pick(params.drift_category, inputs, ("string",), taken)
    taken.add(category or "")
    nulls = None if aware else _pick(params.drift_nulls, inputs, _NULLABLE, taken)
    shift, integer = 0.0, False
    if numeric is not None:
        kind = next(c["type"] for c in inputs if c["name"] == numeric)
        values = [
            float(v)
            for v in sample.column(numeric).to_pylist()
            if isinstance(v, int | float) and math.isfinite(float(v))
        ]
        spread = statistics.pstdev(values) if len(values) > 1 else 1.0
        integer = kind in ("long", "integer")
        shift = 2.0 * (spread or 1.0)
        shift = float(max(1, round(shift))) if integer else shift
    unknown = None
    if aware:
        key = champion["feature_aware"]["keys"][0]
        kind = next((c["type"] for c in champion["inputs"] if c["name"] == key), "long")
        unknown = (key, kind)
    return _Drift(numeric, shift, integer, category, nulls, unknown)


def _columns(ready: dict[str, Any], table_columns: list[str]) -> list[str]:
    """What requests carry: every route's required inputs (all inputs without a schema)."""
    wanted: dict[str, None] = {}
    for route in ready["routes"]:
        inputs = route["inputs"]
        if inputs is None:
            return list(table_columns)
        wanted.update((c["name"], None) for c in inputs if c["required"])
    return list(wanted)


@step_kind("serve_demo")
def serve_demo(ctx: StepContext, params: ServeDemoParams) -> str | None:
    """Start an endpoint (champion, challenger, shadow) on a free port, send traffic, report."""
    import requests

    from lakeloom.deployment import DeploymentContext, create_app, parse_endpoint_config
    from lakeloom.deployment.server import start_server

    ws = ctx.workspace
    config = parse_endpoint_config(_config(params), f"step {ctx.step}")
    app = create_app(config, DeploymentContext(ws.tables, ws.tracking, ws.settings, ws.storage))
    server = start_server(app)
    runtime = app.state.runtime
    by_batch: dict[tuple[str, str], list[float]] = defaultdict(list)
    failures: dict[tuple[str, int], int] = defaultdict(int)
    lock = threading.Lock()
    drift_note = ""
    tag = ctx.run_id[:8]
    try:
        ready = requests.get(server.url + "/ready", timeout=30).json()
        frame = ctx.read(params.data)
        table = ws.engine.to_arrow(frame)  # Arrow stays Arrow; a Spark frame is collected
        columns = _columns(ready, list(table.column_names))
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InvalidArgument(
                f"{params.data} lacks the input column(s) {', '.join(missing)} of the endpoint"
            )
        sample = table.slice(0, 5000)
        rows = sample.select(columns).to_pylist()
        if not rows:
            return f"no rows in {params.data}: nothing sent"
        n = params.rows_per_request
        local = threading.local()

        def sender(batch: str, pool_rows: list[dict[str, Any]]) -> Any:
            def send(i: int) -> None:
                session = getattr(local, "session", None)
                if session is None:
                    session = local.session = requests.Session()
                start = (i * n) % len(pool_rows)
                body = [pool_rows[(start + k) % len(pool_rows)] for k in range(n)]
                t0 = time.perf_counter()
                resp = session.post(
                    server.url + "/invocations",
                    json={"dataframe_records": body},
                    headers={"X-Request-ID": f"{batch}-{tag}-{i:06d}"},
                    timeout=60,
                )
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    if resp.status_code == 200:
                        route = resp.headers.get("x-lakeloom-route", "?")
                        by_batch[(batch, route)].append(elapsed)
                    else:
                        failures[(batch, resp.status_code)] += 1

            return send

        with ThreadPoolExecutor(params.concurrency) as pool:
            list(pool.map(sender("req", rows), range(params.requests)))
        if params.drift_requests:
            champion = ready["routes"][0]
            drift = _drift(params, champion, sample)
            wide = sample.select(
                list(
                    dict.fromkeys(
                        [*columns, *(c for c in (drift.numeric, drift.category, drift.nulls) if c)]
                    )
                )
            ).to_pylist()
            drifted = drift.apply(wide)
            drift_note = f"; drift: {params.drift_requests} requests ({drift.describe()})"
            with ThreadPoolExecutor(params.concurrency) as pool:
                list(pool.map(sender("drift", drifted), range(params.drift_requests)))
        runtime.flush_log()  # every answered request is in the inference table now
    finally:
        server.stop()
    if ws.tables.exists(config.table):
        ctx.wrote(config.table, ws.tables.version(config.table))
    lines = [f"{'batch':<6} {'route':<12} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8}"]
    for (batch, route), latencies in sorted(by_batch.items(), key=lambda kv: kv[0][0] != "req"):
        lines.append(
            f"{batch:<6} {route:<12} {len(latencies):>8} {_percentile(latencies, 0.5):>8.2f} "
            f"{_percentile(latencies, 0.99):>8.2f}"
        )
    for (batch, status), count in sorted(failures.items()):
        lines.append(f"{batch:<6} {'HTTP ' + str(status):<12} {count:>8}")
    print("\n".join(lines), file=sys.stderr)
    totals: dict[str, list[float]] = defaultdict(list)
    for (_, route), latencies in by_batch.items():
        totals[route] += latencies
    parts = [
        f"{route} {len(lat)} (p50 {_percentile(lat, 0.5):.1f} ms)"
        for route, lat in sorted(totals.items())
    ]
    failed = sum(failures.values())
    return (
        ", ".join(parts)
        + (f", {failed} failed" if failed else "")
        + drift_note
        + f"; {config.table}"
    )
