"""The ``serve_demo`` step kind: a real endpoint on a free local port, some traffic, a report.

It starts an endpoint with a champion route (and optionally a challenger and a shadow),
sends ``requests`` requests built from rows of ``data`` (only the columns the champion
takes), prints how many each route answered and their latencies, then stops the endpoint,
which writes the inference table ``lakeloom.inference_<endpoint>``.

    [[steps]]
    name = "serve"
    kind = "serve_demo"
    champion = "models:/churn_model@production"
    challenger = "models:/churn_model@challenger"
    data = "ml.churn_training"
    requests = 500
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lakeloom.pipelines.steps import StepContext, step_kind

__all__ = ["ServeDemoParams", "serve_demo"]


@dataclass(frozen=True)
class ServeDemoParams:
    """Keys of a ``serve_demo`` step."""

    champion: str
    #: The table whose rows become requests (its columns that the champion takes).
    data: str
    endpoint: str = "churn"
    challenger: str | None = None
    champion_weight: float = 90.0
    challenger_weight: float = 10.0
    shadow: str | None = None
    requests: int = 500
    concurrency: int = 8
    rows_per_request: int = 1

    def __post_init__(self) -> None:
        if self.requests < 1 or self.concurrency < 1 or self.rows_per_request < 1:
            raise ValueError("keys 'requests', 'concurrency' and 'rows_per_request' must be >= 1")
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


@step_kind("serve_demo")
def serve_demo(ctx: StepContext, params: ServeDemoParams) -> str | None:
    """Start an endpoint (champion, challenger, shadow) on a free port, send traffic, report."""
    import requests

    from lakeloom.deployment import DeploymentContext, create_app, parse_endpoint_config
    from lakeloom.deployment.server import start_server

    ws = ctx.workspace
    config = parse_endpoint_config(_config(params), f"step {ctx.step}")
    app = create_app(config, DeploymentContext(ws.tables, ws.tracking, ws.settings))
    server = start_server(app)
    by_route: dict[str, list[float]] = defaultdict(list)
    failures: dict[int, int] = defaultdict(int)
    lock = threading.Lock()
    try:
        ready = requests.get(server.url + "/ready", timeout=30).json()
        inputs = ready["routes"][0]["inputs"]
        frame = ctx.read(params.data)
        table = frame if hasattr(frame, "column_names") else ws.engine.to_arrow(frame)
        columns = [c["name"] for c in inputs] if inputs else list(table.column_names)
        rows = table.select(columns).slice(0, 5000).to_pylist()
        if not rows:
            return f"no rows in {params.data}: nothing sent"
        n = params.rows_per_request
        local = threading.local()

        def send(i: int) -> None:
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
            start = (i * n) % len(rows)
            batch = [rows[(start + k) % len(rows)] for k in range(n)]
            t0 = time.perf_counter()
            resp = session.post(
                server.url + "/invocations",
                json={"dataframe_records": batch},
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if resp.status_code == 200:
                    by_route[resp.headers.get("x-lakeloom-route", "?")].append(elapsed)
                else:
                    failures[resp.status_code] += 1

        with ThreadPoolExecutor(params.concurrency) as pool:
            list(pool.map(send, range(params.requests)))
    finally:
        server.stop()
    if ws.tables.exists(config.table):
        ctx.wrote(config.table, ws.tables.version(config.table))
    lines = [f"{'route':<12} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8}"]
    for route, latencies in sorted(by_route.items()):
        lines.append(
            f"{route:<12} {len(latencies):>8} {_percentile(latencies, 0.5):>8.2f} "
            f"{_percentile(latencies, 0.99):>8.2f}"
        )
    for status, count in sorted(failures.items()):
        lines.append(f"{'HTTP ' + str(status):<12} {count:>8}")
    print("\n".join(lines), file=sys.stderr)
    parts = [
        f"{route} {len(lat)} (p50 {_percentile(lat, 0.5):.1f} ms)"
        for route, lat in sorted(by_route.items())
    ]
    failed = sum(failures.values())
    return ", ".join(parts) + (f", {failed} failed" if failed else "") + f"; {config.table}"
