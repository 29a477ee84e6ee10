"""Hot reload: alias moves under concurrent load, a version that fails to load, rollback."""

from __future__ import annotations

import threading
import time
from collections import Counter

import requests
from deployment_support import COLUMNS, Endpoint, Registry, records


class Load:
    """Client threads posting while the test moves aliases; every answer is recorded."""

    def __init__(self, ep: Endpoint, payload: dict[str, object], threads: int = 6) -> None:
        self.ep = ep
        self.payload = payload
        self.statuses: Counter[int] = Counter()
        self.versions: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                resp = session.post(self.ep.url + "/invocations", json=self.payload, timeout=30)
            except requests.RequestException as exc:  # a dropped connection is a failure too
                with self._lock:
                    self.errors.append(repr(exc))
                continue
            with self._lock:
                self.statuses[resp.status_code] += 1
                self.versions.append(
                    (time.monotonic(), resp.headers.get("x-lakeloom-model-version", "?"))
                )

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def wait_for_version(self, version: str, timeout: float = 30.0) -> float:
        """When responses started coming from ``version``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                hits = [t for t, v in self.versions if v == version]
            if hits:
                return hits[0]
            time.sleep(0.05)
        raise AssertionError(
            f"version {version} was never served: {Counter(v for _, v in self.versions)}"
        )


def _version(ep: Endpoint) -> int:
    return int(ep.ready()["routes"][0]["version"])


def test_alias_move_under_load_fails_no_request(
    reload_endpoint: Endpoint, registry: Registry
) -> None:
    ep = reload_endpoint
    payload = {"dataframe_records": records(registry.frame.head(2)[COLUMNS])}
    registry.set_alias("reload_model", "live", 1)
    ep.wait_for(lambda s: s["routes"][0]["version"] == 1)
    with Load(ep, payload) as load:
        time.sleep(0.5)
        moved = time.monotonic()
        registry.set_alias("reload_model", "live", 2)
        first_v2 = load.wait_for_version("2")
        time.sleep(1.0)  # keep loading after the swap
    assert not load.errors, load.errors[:3]
    assert set(load.statuses) == {200}, load.statuses
    assert sum(load.statuses.values()) > 50
    after = [v for t, v in load.versions if t > first_v2 + 0.5]
    assert after and set(after) == {"2"}  # once swapped, only the new version answers
    assert first_v2 >= moved
    assert _version(ep) == 2


def test_failed_load_keeps_serving_then_rollback(
    reload_endpoint: Endpoint, registry: Registry
) -> None:
    ep = reload_endpoint
    payload = {"dataframe_records": records(registry.frame.head(2)[COLUMNS])}
    registry.set_alias("reload_model", "live", 2)
    ep.wait_for(lambda s: s["routes"][0]["version"] == 2)
    with Load(ep, payload, threads=3) as load:
        registry.set_alias("reload_model", "live", 3)  # saved with pickle: refused
        ep.wait_for(lambda s: "reload_error" in s["routes"][0])
        state = ep.ready()
        assert state["status"] == "degraded"
        assert state["routes"][0]["version"] == 2
        error = state["routes"][0]["reload_error"]
        assert error["version"] == 3 and "pickle" in error["error"]
        time.sleep(0.5)
        # `lakeloom models rollback`: the alias goes back to an earlier version
        registry.set_alias("reload_model", "live", 1)
        load.wait_for_version("1")
        ep.wait_for(lambda s: s["routes"][0]["version"] == 1 and s["status"] == "ready")
    assert not load.errors and set(load.statuses) == {200}, (load.errors[:3], load.statuses)
    metrics = ep.session.get(ep.url + "/metrics", timeout=10).text
    labels = '{endpoint="reload",model="models:/reload_model@live"}'
    assert f"lakeloom_model_reload_failures_total{labels} 1" in metrics
    registry.set_alias("reload_model", "live", 1)
