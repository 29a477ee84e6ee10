"""Several processes writing one table at once: nothing lost, nothing duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import deltalake
import pyarrow as pa
import pytest
from deltalake.exceptions import CommitFailedError

import lakeloom.engines.local as local_engine
from lakeloom import Workspace
from lakeloom.errors import ConcurrentWriteConflict

# Children use the lakehouse directly (no MLflow import): they start in well under a second,
# announce themselves, and all start writing when the parent says go.
_PRELUDE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import pyarrow as pa

    from lakeloom.engines.local import LocalEngine
    from lakeloom.errors import ConcurrentWriteConflict
    from lakeloom.lakehouse import Storage, Tables

    root, sync, worker = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    tables = Tables(Storage(root), LocalEngine())
    (sync / f"ready-{worker}").write_text("")
    while not (sync / "go").exists():
        time.sleep(0.005)
    """
)

_APPENDER = _PRELUDE + textwrap.dedent(
    """
    for i in range(3):
        rows = list(range(i * 100, i * 100 + 100))
        tables.write("raw.events", pa.table({"worker": [worker] * 100, "i": rows}))
    print(json.dumps({"worker": worker, "done": 3}))
    """
)

_MERGER = _PRELUDE + textwrap.dedent(
    """
    # Worker 0 upserts keys 0..149, worker 1 keys 50..199: 50..149 collide every round.
    low = 0 if worker == 0 else 50
    outcome = []
    for r in range(1, 4):
        keys = list(range(low, low + 150)) + [1000 * (worker + 1) + r]
        data = pa.table({"k": keys, "v": [f"w{worker}r{r}"] * len(keys)})
        try:
            tables.merge("raw.accounts", data, keys="k")
            outcome.append([r, "ok"])
        except ConcurrentWriteConflict as exc:
            assert exc.retryable
            outcome.append([r, "conflict"])
    print(json.dumps(outcome))
    """
)


def run_together(script: str, root: str, sync: Path, workers: int) -> list[Any]:
    """Start ``workers`` processes, release them at once, return each one's JSON output."""
    sync.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, root, str(sync), str(w)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(sync.glob("ready-*"))) < workers:
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed or time.monotonic() > deadline:
                pytest.fail(
                    f"a worker did not start: {failed[0].communicate()[1] if failed else ''}"
                )
            time.sleep(0.01)
        (sync / "go").write_text("")
        results = []
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.slow
def test_four_processes_appending_at_once(workspace: Workspace, tmp_path: Path) -> None:
    """The table does not exist yet: the writers also race to create it."""
    results = run_together(_APPENDER, workspace.root, tmp_path / "sync", workers=4)
    assert sorted(r["worker"] for r in results) == [0, 1, 2, 3]

    table = workspace.tables.read("raw.events")
    assert table.num_rows == 4 * 3 * 100
    pairs = Counter(
        zip(table.column("worker").to_pylist(), table.column("i").to_pylist(), strict=True)
    )
    assert len(pairs) == 1200
    assert max(pairs.values()) == 1
    history = workspace.tables.history("raw.events")
    assert [h["version"] for h in history] == list(range(11, -1, -1))
    assert {h["operation"] for h in history} == {"WRITE"}


@pytest.mark.slow
def test_two_conflicting_merges_at_once(workspace: Workspace, tmp_path: Path) -> None:
    tables = workspace.tables
    tables.write("raw.accounts", pa.table({"k": list(range(200)), "v": ["init"] * 200}))
    outcomes = run_together(_MERGER, workspace.root, tmp_path / "sync", workers=2)

    applied = {
        w: [r for r, status in outcome if status == "ok"] for w, outcome in enumerate(outcomes)
    }
    assert all(status in ("ok", "conflict") for o in outcomes for _, status in o)

    result = tables.read("raw.accounts")
    keys = result.column("k").to_pylist()
    assert len(keys) == len(set(keys))  # no key duplicated
    expected = set(range(200)) | {
        1000 * (w + 1) + r for w, rounds in applied.items() for r in rounds
    }
    assert set(keys) == expected  # no upsert lost
    merges = [h for h in tables.history("raw.accounts") if h["operation"] == "MERGE"]
    assert len(merges) == sum(len(r) for r in applied.values())

    value = dict(zip(keys, result.column("v").to_pylist(), strict=True))

    def last(w: int) -> str:
        return f"w{w}r{max(applied[w])}" if applied[w] else "init"

    assert {value[k] for k in range(0, 50)} == {last(0)}  # only worker 0 writes these
    assert {value[k] for k in range(150, 200)} == {last(1)}  # only worker 1
    shared = {value[k] for k in range(50, 150)}
    assert len(shared) == 1  # one merge's rows, never a mix of two
    assert shared <= {last(0), last(1)}


# -- retries, deterministically ------------------------------------------------------------
def _conflict_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the next delta-rs write fail as if another writer had committed first."""
    calls: list[int] = []
    real = deltalake.write_deltalake

    def flaky(table_or_uri: Any, data: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            if isinstance(data, pa.RecordBatchReader):
                data.read_next_batch()  # a stream is consumed as it is written
            raise CommitFailedError("Commit failed: a concurrent transaction deleted data")
        real(table_or_uri, data, **kwargs)

    monkeypatch.setattr(local_engine, "write_deltalake", flaky)
    return calls


def test_in_memory_write_is_retried_after_a_conflict(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.tables.write("raw.r", pa.table({"id": [1]}))
    calls = _conflict_once(monkeypatch)
    assert workspace.tables.write("raw.r", pa.table({"id": [2]}), mode="overwrite") == 1
    assert len(calls) == 2
    assert workspace.tables.read("raw.r").column("id").to_pylist() == [2]


def test_streamed_write_conflict_is_a_clear_retryable_error(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.tables.write("raw.r", pa.table({"id": [1]}))
    calls = _conflict_once(monkeypatch)
    batch = pa.record_batch({"id": [2]})
    reader = pa.RecordBatchReader.from_batches(batch.schema, [batch, batch])
    with pytest.raises(ConcurrentWriteConflict, match="cannot be replayed") as info:
        workspace.tables.write("raw.r", reader)
    assert info.value.retryable
    assert len(calls) == 1
    assert workspace.tables.version("raw.r") == 0


def test_merge_gives_up_with_a_retryable_error(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.tables.write("raw.m", pa.table({"k": [1], "v": [1]}))

    def always_conflicting(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise CommitFailedError("Commit failed: a concurrent transaction added new data")

    monkeypatch.setattr(deltalake.DeltaTable, "merge", always_conflicting)
    with pytest.raises(ConcurrentWriteConflict, match="retry") as info:
        workspace.tables.merge("raw.m", pa.table({"k": [1], "v": [2]}), keys="k")
    assert info.value.retryable
    monkeypatch.undo()
    assert workspace.tables.read("raw.m").to_pylist() == [{"k": 1, "v": 1}]
