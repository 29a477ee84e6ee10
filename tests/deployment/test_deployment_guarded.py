"""Safety on a real endpoint: API keys, body and row limits, the per-request timeout."""

from __future__ import annotations

import json
import time

from deployment_support import API_KEY, Endpoint

OK = {"dataframe_records": [{"sleep": 0.0}]}


def test_api_keys(guarded_endpoint: Endpoint) -> None:
    ep = guarded_endpoint
    assert ep.post(OK).status_code == 401
    wrong = ep.post(OK, headers={"Authorization": "Bearer not-the-key"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert API_KEY not in wrong.text
    assert ep.post(OK, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert ep.post(OK, headers={"X-API-Key": API_KEY}).status_code == 200
    assert ep.session.get(ep.url + "/metrics", timeout=10).status_code == 401
    metrics = ep.session.get(ep.url + "/metrics", headers={"X-API-Key": API_KEY}, timeout=10)
    assert metrics.status_code == 200 and 'status="401"' in metrics.text
    assert ep.session.get(ep.url + "/health", timeout=10).status_code == 200
    assert ep.session.get(ep.url + "/ready", timeout=10).status_code == 200


def test_limits_and_timeout(guarded_endpoint: Endpoint) -> None:
    ep = guarded_endpoint
    auth = {"X-API-Key": API_KEY}
    big = json.dumps({"dataframe_records": [{"sleep": 0.0, "pad": "x" * 100_000}]}).encode()
    resp = ep.raw(big, "application/json", headers=auth)
    assert resp.status_code == 413 and "65536 bytes" in resp.json()["message"]
    chunked = ep.raw(iter([big[:40_000], big[40_000:]]), "application/json", headers=auth)  # type: ignore[arg-type]
    assert chunked.status_code == 413
    rows = ep.post({"dataframe_records": [{"sleep": 0.0}] * 51}, headers=auth)
    assert rows.status_code == 413 and "at most 50" in rows.json()["message"]
    slow = ep.post({"dataframe_records": [{"sleep": 1.0}]}, headers=auth)
    assert slow.status_code == 504 and "longer than 0.5s" in slow.json()["message"]
    time.sleep(1.0)  # the model is still busy with the slow rows for a moment
    assert ep.post(OK, headers=auth).status_code == 200  # and the endpoint carries on
