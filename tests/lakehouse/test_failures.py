"""A write that fails leaves the table at its previous version, with its previous rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.lakehouse import Tables

ORIGINAL = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", "c"]})


def rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])


@pytest.fixture
def tables(workspace: Workspace) -> Tables:
    workspace.tables.write("raw.safe", ORIGINAL)
    return workspace.tables


def assert_untouched(tables: Tables, version: int = 0) -> None:
    assert tables.version("raw.safe") == version
    assert rows(tables.read("raw.safe")) == rows(ORIGINAL)
    assert tables.history("raw.safe", limit=1)[0]["version"] == version


def test_schema_mismatch_leaves_the_table(tables: Tables) -> None:
    with pytest.raises(SchemaMismatch, match="'id'"):
        tables.write("raw.safe", pa.table({"id": ["x"], "name": ["d"]}))
    with pytest.raises(SchemaMismatch, match="'id'"):
        tables.write("raw.safe", pa.table({"id": ["x"], "name": ["d"]}), mode="overwrite")
    with pytest.raises(SchemaMismatch, match="'extra'"):
        tables.write("raw.safe", pa.table({"id": [4], "name": ["d"], "extra": [1]}))
    assert_untouched(tables)


def test_value_that_does_not_fit_mid_stream_leaves_the_table(workspace: Workspace) -> None:
    """The schema fits, but the 4th batch holds a value the int32 column cannot take."""
    tables = workspace.tables
    tables.write("raw.narrow", pa.table({"n": pa.array([1], pa.int32())}))
    schema = pa.schema([("n", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        for b in range(6):
            value = 2**40 if b == 3 else b
            yield pa.record_batch({"n": pa.array([value] * 100, pa.int64())})

    with pytest.raises(SchemaMismatch, match="'n'"):
        tables.write("raw.narrow", pa.RecordBatchReader.from_batches(schema, batches()))
    assert tables.version("raw.narrow") == 0
    assert tables.read("raw.narrow").column("n").to_pylist() == [1]


class SourceFailed(RuntimeError):
    """What a user's data source raises half way."""


def failing_reader(fail_at: int) -> tuple[pa.RecordBatchReader, list[int]]:
    pulled: list[int] = []
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])

    def batches() -> Iterator[pa.RecordBatch]:
        for b in range(10):
            if b == fail_at:
                raise SourceFailed(f"source broke at batch {b}")
            pulled.append(b)
            ids = pa.array(range(100 + b * 1000, 100 + b * 1000 + 1000), pa.int64())
            yield pa.record_batch({"id": ids, "name": ["n"] * 1000}, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches()), pulled


@pytest.mark.parametrize("mode", ["append", "overwrite"])
def test_exception_inside_a_streamed_reader_propagates_without_commit(
    tables: Tables, mode: str
) -> None:
    reader, pulled = failing_reader(fail_at=5)
    with pytest.raises(SourceFailed, match="source broke at batch 5"):
        tables.write("raw.safe", reader, mode=mode)  # type: ignore[arg-type]
    assert pulled == [0, 1, 2, 3, 4]  # some batches were consumed before it broke
    assert_untouched(tables)
    # The table takes the next write normally.
    assert tables.write("raw.safe", pa.table({"id": [4], "name": ["d"]})) == 1


@pytest.mark.parametrize("fail_at", [0, 2])
def test_failing_reader_does_not_create_a_new_table(workspace: Workspace, fail_at: int) -> None:
    reader, _ = failing_reader(fail_at=fail_at)
    with pytest.raises(SourceFailed):
        workspace.tables.write("raw.never", reader)
    assert not workspace.tables.exists("raw.never")
    assert workspace.tables.list() == []
    assert workspace.tables.write("raw.never", pa.table({"id": [1], "name": ["x"]})) == 0


def test_failed_merge_leaves_the_table(tables: Tables) -> None:
    with pytest.raises(InvalidArgument, match="repeated key"):
        tables.merge("raw.safe", pa.table({"id": [7, 7], "name": ["x", "y"]}), keys="id")
    with pytest.raises(SchemaMismatch):
        tables.merge("raw.safe", pa.table({"id": ["7"], "name": ["x"]}), keys="id")
    assert_untouched(tables)


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    import pyarrow as pa

    import lakeloom.engines.local as local
    from lakeloom.lakehouse import Storage, Tables

    local._TARGET_FILE_SIZE = 1 << 20  # small files: some are on disk when we are killed
    root, ready = sys.argv[1], Path(sys.argv[2])
    tables = Tables(Storage(root), local.LocalEngine())
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])

    def batches():
        for b in range(10_000):
            if b == 20:
                ready.write_text("streaming")  # the parent kills us from here on
            if b >= 20:
                time.sleep(0.05)
            ids = pa.array(range(10_000 + b * 50_000, 10_000 + (b + 1) * 50_000), pa.int64())
            yield pa.record_batch({"id": ids, "name": pa.array(["x"] * 50_000)}, schema=schema)

    tables.write("raw.safe", pa.RecordBatchReader.from_batches(schema, batches()))
    print("the write finished: it should have been killed", flush=True)
    """
)


@pytest.mark.slow
def test_killed_writer_leaves_the_table_readable(workspace: Workspace, tmp_path: Path) -> None:
    tables = workspace.tables
    tables.write("raw.safe", ORIGINAL)
    assert tables.version("raw.safe") == 0
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, workspace.root, str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                _, err = proc.communicate()
                pytest.fail(f"writer exited before streaming (code {proc.returncode}): {err}")
            time.sleep(0.02)
        time.sleep(0.3)  # well inside the stream: a million rows handed to delta-rs
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert "finished" not in out

    table_dir = Path(workspace.root, "Tables", "raw", "safe")
    assert sorted(p.name for p in (table_dir / "_delta_log").glob("*.json")) == [
        "00000000000000000000.json"
    ]
    orphans = [p for p in table_dir.glob("*.parquet")]
    assert len(orphans) > 1  # the dead writer's files are on disk, but not in the table
    assert_untouched(tables)
    assert tables.sql("select count(*) n from raw.safe").to_pylist() == [{"n": 3}]
    # Later writes work, and vacuum clears whatever the dead writer left behind.
    assert tables.write("raw.safe", pa.table({"id": [4], "name": ["d"]})) == 1
    assert tables.read("raw.safe").num_rows == 4
    tables.vacuum("raw.safe", retain="0h")
    leftovers = [p for p in table_dir.rglob("*") if p.is_file() and "_delta_log" not in p.parts]
    assert len(leftovers) == tables.describe("raw.safe").files == 2
