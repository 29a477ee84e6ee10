"""Monitoring runs on real Delta tables and inference tables written by the real logger."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from monitoring_support import END, customers, log_traffic

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, LakeloomError, MonitoringError, TableNotFound
from lakeloom.monitoring import MonitorResult

DAY = timedelta(days=1)


def drifted(result: MonitorResult, reference: str = "baseline") -> dict[str, set[str]]:
    """Drifted primary findings by column: the methods that fired."""
    out: dict[str, set[str]] = {}
    for f in result.drifted:
        if f.reference == reference and f.slice is None:
            out.setdefault(f.column, set()).add(f.method)
    return out


@pytest.fixture
def served(workspace: Workspace) -> Workspace:
    """A baseline table and two days of traffic: the same distribution, then drifted."""
    workspace.tables.write("ml.training", customers(5000, seed=1))
    log_traffic(workspace, "churn", customers(2000, seed=2), start=END - 2 * DAY, span=DAY)
    log_traffic(
        workspace,
        "churn",
        customers(2000, seed=3, shift=1.0, new_plan=0.1, null_spend=0.2),
        start=END - DAY,
        span=DAY,
        failures=4,
    )
    return workspace


def test_injected_drift_is_detected_against_baseline_and_previous_window(
    served: Workspace, tmp_path: Path
) -> None:
    result = served.monitor(endpoint="churn", baseline="ml.training", window="1d")
    assert result.rows == {"baseline": 5000, "current": 2000, "previous": 2000}
    found = drifted(result)
    assert found["spend"] == {"wasserstein", "null_rate"}  # shifted mean, null spike
    assert found["plan"] == {"jensen_shannon", "unseen_categories"}  # a new category
    assert "tenure" not in found and "email_opt_in" not in found
    assert "customer_id" not in {f.column for f in result.findings}  # an identifier
    assert set(drifted(result, "previous")) == {"spend", "plan"}
    assert [f.column for f in result.most_drifted(2)] == ["spend", "plan"]
    unseen = next(f for f in result.drifted if f.method == "unseen_categories")
    assert json.loads(unseen.detail)["categories"] == ["enterprise"]
    assert result.exit_code == 1
    champion = {r.route: r for r in result.routes}["champion"]
    assert champion.rows == 2004 and champion.errors == 4
    assert champion.error_rate == pytest.approx(4 / 2004)
    assert 5.0 <= champion.latency_p50_ms <= 11.0  # logged latencies are 5-11 ms


def test_the_same_distribution_raises_no_alarm(served: Workspace) -> None:
    # The first day of traffic: drawn like the baseline with another seed.
    old = served.monitor(
        endpoint="churn",
        baseline="ml.training",
        window="1d",
        name="first_day",
        time_column="time",
    )
    assert old.drift_found  # the newest window is the drifted one...
    result = served.monitor(table="ml.training", baseline="ml.training", name="self")
    assert not result.drift_found
    served.tables.write("ml.same", customers(5000, seed=11))
    big = served.monitor(table="ml.same", baseline="ml.training", name="same_big")
    assert not big.drift_found, [f.to_dict() for f in big.drifted]
    assert all(
        f.method in ("wasserstein", "jensen_shannon")
        for f in big.findings
        if f.primary and f.kind == "feature"
    )
    served.tables.write("ml.small_base", customers(800, seed=21))
    served.tables.write("ml.small_cur", customers(600, seed=22))
    small = served.monitor(table="ml.small_cur", baseline="ml.small_base", name="same_small")
    assert not small.drift_found, [f.to_dict() for f in small.drifted]
    assert {f.method for f in small.findings if f.primary and f.kind == "feature"} == {"ks", "chi2"}


def test_small_samples_detect_drift_with_tests(workspace: Workspace) -> None:
    workspace.tables.write("ml.base", customers(800, seed=5))
    workspace.tables.write("ml.cur", customers(500, seed=6, shift=0.5, new_plan=0.05))
    result = workspace.monitor(table="ml.cur", baseline="ml.base", name="small")
    found = drifted(result)
    assert found["spend"] == {"ks"}
    assert "chi2" in found["plan"]


def test_results_are_appended_and_queryable_with_sql(served: Workspace, tmp_path: Path) -> None:
    first = served.monitor(endpoint="churn", baseline="ml.training", window="1d", slice="plan")
    second = served.monitor(endpoint="churn", baseline="ml.training")
    assert first.tables == {
        "lakeloom.monitor_churn_profile": 0,
        "lakeloom.monitor_churn_drift": 0,
    }
    assert second.tables["lakeloom.monitor_churn_drift"] == 1
    runs = served.engine.to_arrow(
        served.sql(
            "select run_id, count(*) as n from lakeloom.monitor_churn_drift "
            "where is_primary and drifted group by run_id"
        )
    ).to_pylist()
    assert {r["run_id"] for r in runs} == {first.run_id, second.run_id}
    sliced = (
        served.engine.to_arrow(
            served.sql(
                "select distinct slice from lakeloom.monitor_churn_drift where slice is not null"
            )
        )
        .column("slice")
        .to_pylist()
    )
    assert set(sliced) == {"plan=basic", "plan=pro", "plan=max", "plan=enterprise"}
    stats = served.engine.to_arrow(
        served.sql(
            "select dataset, stat, value from lakeloom.monitor_churn_profile "
            f"where run_id = '{second.run_id}' and feature = 'spend' and stat = 'nulls'"
        )
    ).to_pylist()
    nulls = {r["dataset"]: r["value"] for r in stats}
    assert nulls["baseline"] == 0 and nulls["current"] > 300  # 20% of the second day


def test_report_is_self_contained_html_with_plots(served: Workspace, tmp_path: Path) -> None:
    served.monitor(endpoint="churn", baseline="ml.training", window="1d")
    result = served.monitor(
        endpoint="churn", baseline="ml.training", window="1d", report=tmp_path / "out"
    )
    path = Path(str(result.report))
    assert path == tmp_path / "out" / "monitor_churn.html"
    text = path.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") >= 5  # distributions and the history
    assert "Drift over time" in text and "drift found" in text and "enterprise" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that records the JSON posted to it."""
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_receives_the_summary(served: Workspace, webhook: str) -> None:
    result = served.monitor(endpoint="churn", baseline="ml.training", webhook=webhook)
    assert result.webhook_status == 204
    (posted,) = _Hook.received
    assert posted["monitor"] == "churn" and posted["drift_found"] is True
    assert {d["column"] for d in posted["drifted"]} >= {"spend", "plan"}
    assert posted["run_id"] == result.run_id


def test_unreachable_webhook_is_an_error(served: Workspace) -> None:
    with pytest.raises(MonitoringError, match="cannot post"):
        served.monitor(endpoint="churn", baseline="ml.training", webhook="http://127.0.0.1:9/x")


def test_bad_input_is_refused_and_writes_nothing(served: Workspace) -> None:
    cases: list[tuple[dict[str, Any], type[LakeloomError], str]] = [
        ({"endpoint": "nope"}, TableNotFound, "inference_nope"),
        ({"endpoint": "churn", "table": "ml.training"}, InvalidArgument, "exactly one"),
        ({"endpoint": "churn", "window": "0s"}, InvalidArgument, "window"),
        ({"endpoint": "churn", "slice": "colour"}, InvalidArgument, "colour"),
        ({"endpoint": "churn", "name": "Bad-Name"}, InvalidArgument, "monitor name"),
        ({"endpoint": "churn", "columns": ["nope"]}, InvalidArgument, "nope"),
        ({"endpoint": "churn", "labels": "raw.x"}, InvalidArgument, "join-key"),
        ({"endpoint": "churn", "webhook": "ftp://x"}, InvalidArgument, "webhook"),
    ]
    for options, error, text in cases:
        with pytest.raises(error, match=text):
            served.monitor(baseline="ml.training", **options)
    with pytest.raises(TableNotFound):
        served.monitor(endpoint="churn", baseline="ml.nothing")
    with pytest.raises(InvalidArgument, match="models:/name@alias"):
        served.monitor(endpoint="churn", baseline="models:/x@")
    assert not [t for t in served.tables.list("lakeloom") if t.startswith("lakeloom.monitor")]
