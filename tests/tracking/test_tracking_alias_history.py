"""The alias history's compare-and-set, and racing promotions in separate processes."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tracking_support import Store

from lakeloom import Workspace
from lakeloom.engines.base import TableRef
from lakeloom.tracking.alias_history import AliasEvent, AliasHistory, HistoryConflict
from lakeloom.tracking.registry import _in_flight


def _event(seq: int, from_version: int | None, to_version: int | None) -> AliasEvent:
    return AliasEvent.new(
        model="m",
        alias="production",
        seq=seq,
        from_version=from_version,
        to_version=to_version,
        user="u",
        reason="",
        kind="promote",
    )


def test_only_one_of_two_writers_of_the_same_snapshot_commits(tmp_path: Path) -> None:
    history = AliasHistory(TableRef("lakeloom.alias_history", str(tmp_path / "h")))
    assert history.snapshot().version is None
    history.append([_event(1, None, 1)], read_version=None)
    with pytest.raises(HistoryConflict):  # created concurrently
        history.append([_event(1, None, 2)], read_version=None)
    a = history.snapshot()
    b = history.snapshot()
    assert a.version == b.version == 0
    history.append([_event(a.next_seq("m", "production"), 1, 2)], read_version=a.version)
    with pytest.raises(HistoryConflict):
        history.append([_event(b.next_seq("m", "production"), 1, 3)], read_version=b.version)
    after = history.snapshot()
    assert [(e.seq, e.to_version) for e in after.of("m", "production")] == [(1, 1), (2, 2)]


def test_in_flight_moves() -> None:
    recent = _event(2, 1, 2)
    assert _in_flight(recent, 1)  # committed, MLflow not updated yet
    assert not _in_flight(recent, 2)  # applied
    assert not _in_flight(recent, 3)  # something else happened
    old = AliasEvent(**{**recent.__dict__, "at": datetime.now(UTC) - timedelta(minutes=1)})
    assert not _in_flight(old, 1)  # never applied: the next command records reality
    external = AliasEvent(**{**recent.__dict__, "kind": "external"})
    assert not _in_flight(external, 1)


def _race_in_processes(store: Store, model_name: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = Path(__file__).with_name("race_promote.py")
    processes = []
    for version in (2, 3):
        ready = tmp_path / f"ready-{version}"
        command = [sys.executable, str(script), store.ws.root, model_name, str(version)]
        command += [str(ready), str(go)]
        processes.append(
            (ready, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        )
    deadline = time.monotonic() + 120
    while not all(ready.exists() for ready, _ in processes):
        for _, p in processes:
            if p.poll() is not None:
                _, err = p.communicate()
                pytest.fail(f"a promoting process died: {err.decode()[-2000:]}")
        assert time.monotonic() < deadline, "promoting processes did not start"
        time.sleep(0.05)
    go.touch()
    for _, p in processes:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        assert json.loads(out.decode().strip().splitlines()[-1]) is not None


def _race_in_threads(store: Store, model_name: str) -> None:
    # Separate workspaces: separate registries, MLflow clients and history readers.
    workspaces = [Workspace.open(store.ws.root) for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def promote(ws: Workspace, version: int) -> None:
        try:
            barrier.wait(timeout=30)
            ws.registry.promote(model_name, version, "production", reason=f"race {version}")
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=promote, args=(ws, v))
        for ws, v in zip(workspaces, (2, 3), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for ws in workspaces:
        ws.close()
    assert not errors, errors


def test_racing_promotions_leave_a_consistent_history(
    store: Store, model_name: str, tmp_path: Path
) -> None:
    """Two promotions at once: both recorded, in the order they took effect.

    Separate processes on the embedded store; threads with separate clients on the server
    (the protocol is the same; the server adds network latency between its steps).
    """
    registry = store.ws.registry
    for run in (store.weak_run, store.good_run, store.weak_run):
        registry.register(run, name=model_name)
    registry.promote(model_name, 1, "production", reason="start")
    if store.kind == "sqlite":
        _race_in_processes(store, model_name, tmp_path)
    else:
        _race_in_threads(store, model_name)
    history = registry.history(model_name, "production")
    assert [e.seq for e in history] == [1, 2, 3]
    assert [e.kind for e in history] == ["promote"] * 3
    assert {e.to_version for e in history[1:]} == {2, 3}
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version  # a consistent chain
    assert registry.current(model_name, "production") == history[-1].to_version
