"""Traffic routing on the real endpoint: weights, sticky keys, shadow, live weight changes."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from deployment_support import COLUMNS, Endpoint, Registry, endpoint_toml, records

N = 2000


def _tolerance(n: int, p: float, sigmas: float = 5.0) -> float:
    """A band of ``sigmas`` standard deviations around the share ``p`` of ``n`` draws."""
    return sigmas * math.sqrt(p * (1 - p) / n)


def _set_weights(ep: Endpoint, champion: float, challenger: float) -> None:
    assert ep.config_path is not None
    ep.config_path.write_text(endpoint_toml(ep.name, champion, challenger))
    ep.wait_for(
        lambda s: (
            [r["weight"] for r in s["routes"]] == [champion, challenger]
            and s["config_error"] is None
        )
    )


def _routes(ep: Endpoint, payload: dict[str, object], n: int, threads: int = 4) -> Counter[str]:
    """Where ``n`` requests went (sent by a few concurrent clients)."""
    local = threading.local()

    def one(_: int) -> str:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        resp = session.post(ep.url + "/invocations", json=payload, timeout=30)
        assert resp.status_code == 200, resp.text
        return str(resp.headers["x-lakeloom-route"])

    with ThreadPoolExecutor(threads) as pool:
        return Counter(pool.map(one, range(n)))


def test_split_follows_weights(main_endpoint: Endpoint, registry: Registry) -> None:
    _set_weights(main_endpoint, 90, 10)
    payload = {"dataframe_records": records(registry.frame.head(1)[COLUMNS])}
    counts = _routes(main_endpoint, payload, N)
    share = counts["challenger"] / N
    assert abs(share - 0.10) < _tolerance(N, 0.10), counts
    assert counts["champion"] + counts["challenger"] == N


def test_routing_keys_are_sticky(main_endpoint: Endpoint, registry: Registry) -> None:
    _set_weights(main_endpoint, 50, 50)
    try:
        recs = records(registry.frame.head(1)[COLUMNS])
        seen: dict[str, set[str]] = {}
        for i in range(60):
            key = f"customer-{i}"
            for j in range(4):
                if j % 2:
                    resp = main_endpoint.post({"dataframe_records": recs, "routing_key": key})
                else:
                    resp = main_endpoint.post(
                        {"dataframe_records": recs}, headers={"X-Routing-Key": key}
                    )
                assert resp.status_code == 200
                seen.setdefault(key, set()).add(resp.headers["x-lakeloom-route"])
        assert all(len(routes) == 1 for routes in seen.values()), seen
        spread = Counter(next(iter(r)) for r in seen.values())
        assert spread["champion"] > 10 and spread["challenger"] > 10  # keys are spread
    finally:
        _set_weights(main_endpoint, 90, 10)


def test_weight_change_applies_without_restart(main_endpoint: Endpoint, registry: Registry) -> None:
    payload = {"dataframe_records": records(registry.frame.head(1)[COLUMNS])}
    _set_weights(main_endpoint, 0, 100)
    try:
        assert _routes(main_endpoint, payload, 50) == Counter({"challenger": 50})
        _set_weights(main_endpoint, 30, 70)
        counts = _routes(main_endpoint, payload, 600)
        assert abs(counts["challenger"] / 600 - 0.7) < _tolerance(600, 0.7)
    finally:
        _set_weights(main_endpoint, 90, 10)


def test_invalid_config_keeps_the_running_one(main_endpoint: Endpoint, registry: Registry) -> None:
    assert main_endpoint.config_path is not None
    good = main_endpoint.config_path.read_text()
    main_endpoint.config_path.write_text(good.replace('name = "champion"', 'name = "Bad Name"'))
    try:
        main_endpoint.wait_for(lambda s: s["config_error"] is not None)
        state = main_endpoint.ready()
        assert state["status"] == "degraded" and "routes[0].name" in state["config_error"]
        resp = main_endpoint.post({"dataframe_records": records(registry.frame.head(1)[COLUMNS])})
        assert resp.status_code == 200
    finally:
        main_endpoint.config_path.write_text(good + "\n")
        main_endpoint.wait_for(lambda s: s["config_error"] is None)


def test_shadow_is_logged_never_returned(main_endpoint: Endpoint, registry: Registry) -> None:
    frame = registry.frame.head(3)[COLUMNS]
    ids = [f"shadow-check-{i}" for i in range(5)]
    for rid in ids:
        resp = main_endpoint.post(
            {"dataframe_records": records(frame)}, headers={"X-Request-ID": rid}
        )
        assert resp.status_code == 200
        assert set(resp.json()) == {"predictions"}
        assert resp.headers["x-lakeloom-route"] != "shadow"
        assert resp.headers["x-lakeloom-model-version"] != "3"
    quoted = ", ".join(f"'{i}'" for i in ids)
    query = (
        f"select request_id, route, model_version, row, response from {main_endpoint.table} "
        f"where request_id in ({quoted})"
    )
    deadline = time.monotonic() + 30
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        if registry.ws.tables.exists(main_endpoint.table):
            rows = registry.ws.sql(query).to_pylist()
            if sum(r["route"] == "shadow" for r in rows) == 15:
                break
        time.sleep(0.2)
    shadow = [r for r in rows if r["route"] == "shadow"]
    assert len(shadow) == 15 and {r["model_version"] for r in shadow} == {3}
    expected = registry.models["churn_model/3"].predict(frame).tolist()
    by_row = {(r["request_id"], r["row"]): r["response"] for r in shadow}
    assert [int(by_row[(ids[0], i)]) for i in range(3)] == expected
    assert len([r for r in rows if r["route"] != "shadow"]) == 15
