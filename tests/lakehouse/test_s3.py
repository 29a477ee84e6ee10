"""The lakehouse on an object store: the same API against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from lakeloom import Workspace
from lakeloom.errors import InvalidArgument, TableNotFound

pytestmark = pytest.mark.s3


def rows(table: pa.Table, *keys: str) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda r: tuple(r[k] for k in keys))


def test_write_append_read_and_time_travel(s3_workspace: Workspace) -> None:
    t = s3_workspace.tables
    assert t.write("raw.people", pd.DataFrame({"id": [1, 2], "name": ["a", "b"]})) == 0
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    assert t.write("raw.people", pa.table({"id": [3], "name": ["c"]})) == 1

    assert rows(t.read("raw.people"), "id") == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
        {"id": 3, "name": "c"},
    ]
    assert t.read("raw.people", version=0).num_rows == 2
    assert t.read("raw.people", timestamp=between).num_rows == 2
    picked = t.read("raw.people", columns=["name"], filter="id >= 2")
    assert picked.column_names == ["name"]
    assert sorted(picked.column("name").to_pylist()) == ["b", "c"]

    assert t.write("raw.people", pa.table({"id": [9], "name": ["z"]}), mode="overwrite") == 2
    assert rows(t.read("raw.people"), "id") == [{"id": 9, "name": "z"}]
    assert [h["version"] for h in t.history("raw.people")] == [2, 1, 0]


def test_streamed_reader_to_s3(s3_workspace: Workspace) -> None:
    schema = pa.schema([("i", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        for b in range(20):
            yield pa.record_batch({"i": pa.array(range(b * 100, b * 100 + 100), pa.int64())})

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    assert s3_workspace.tables.write("raw.stream", reader) == 0
    assert s3_workspace.sql("select count(*) n, sum(i) s from raw.stream").to_pylist() == [
        {"n": 2000, "s": sum(range(2000))}
    ]


def test_merge_sql_tags_restore_vacuum(s3_workspace: Workspace) -> None:
    t = s3_workspace.tables
    t.write("raw.accounts", pa.table({"id": [1, 2, 3], "balance": [10.0, 20.0, 30.0]}))
    t.tag("raw.accounts", "baseline")
    v = t.merge("raw.accounts", pa.table({"id": [2, 4], "balance": [25.0, 40.0]}), keys="id")
    assert v == 1
    assert rows(t.read("raw.accounts"), "id") == [
        {"id": 1, "balance": 10.0},
        {"id": 2, "balance": 25.0},
        {"id": 3, "balance": 30.0},
        {"id": 4, "balance": 40.0},
    ]
    t.write("raw.owners", pa.table({"id": [1, 2, 4], "owner": ["ann", "bob", "dan"]}))
    joined = s3_workspace.sql(
        "select o.owner, a.balance from raw.accounts a join raw.owners o using (id) "
        "order by o.owner"
    )
    assert joined.to_pylist() == [
        {"owner": "ann", "balance": 10.0},
        {"owner": "bob", "balance": 25.0},
        {"owner": "dan", "balance": 40.0},
    ]

    assert t.tags("raw.accounts") == {"baseline": 0}
    assert t.restore("raw.accounts", "baseline") == 2
    assert rows(t.read("raw.accounts"), "id") == rows(t.read("raw.accounts", version=0), "id")

    t.write("raw.accounts", pa.table({"id": [7], "balance": [7.0]}), mode="overwrite")
    t.vacuum("raw.accounts", retain="0h")
    assert t.read("raw.accounts", version=0).num_rows == 3  # tagged: kept
    with pytest.raises(InvalidArgument, match="removed"):
        t.read("raw.accounts", version=1)  # untagged: its merge output was vacuumed
    t.untag("raw.accounts", "baseline")
    assert t.tags("raw.accounts") == {}


def test_list_describe_drop(s3_workspace: Workspace) -> None:
    t = s3_workspace.tables
    t.write("raw.a", pa.table({"x": [1, 2, 3]}))
    t.write("raw.a", pa.table({"x": [4]}))
    t.write("feat.b", pa.table({"y": ["u"]}))
    t.write("lakeloom.audit", pa.table({"z": [1]}), system=True)
    assert t.list() == ["feat.b", "lakeloom.audit", "raw.a"]
    assert t.list("raw") == ["raw.a"]

    info = t.describe("raw.a")
    assert info.version == 1
    assert info.rows == 4
    assert info.files == 2
    assert info.size_bytes > 0
    assert info.schema.names == ["x"]
    assert info.location.startswith("s3://")
    assert info.last_operation == "WRITE"

    t.drop("raw.a")
    assert t.list() == ["feat.b", "lakeloom.audit"]
    assert not t.exists("raw.a")
    with pytest.raises(TableNotFound):
        t.read("raw.a")
    # The name can be used again after a drop.
    assert t.write("raw.a", pa.table({"x": [5]})) == 0


def test_reopen_remote_workspace(
    s3_workspace: Workspace, s3_options: dict[str, str], tmp_path: Path
) -> None:
    s3_workspace.tables.write("raw.kept", pa.table({"x": [1]}))
    again = Workspace.open(s3_workspace.root, storage_options=s3_options)
    try:
        assert again.tables.list() == ["raw.kept"]
        assert again.settings.engine == "local"
        # sqlite cannot live on S3: MLflow's store is in the (temporary) local cache.
        assert again.tracking.tracking_uri.startswith(f"sqlite:///{tmp_path / 'cache'}")
        assert again.tracking.artifact_root == f"{s3_workspace.root}/mlartifacts"
    finally:
        again.close()


def test_concurrent_appends_on_s3(s3_workspace: Workspace) -> None:
    """Threads appending at once: conditional puts keep every commit (no lost log entry)."""
    from concurrent.futures import ThreadPoolExecutor

    t = s3_workspace.tables
    t.write("raw.events", pa.table({"w": pa.array([], pa.int64()), "i": pa.array([], pa.int64())}))

    def append(w: int) -> None:
        for i in range(3):
            t.write("raw.events", pa.table({"w": [w] * 10, "i": list(range(i * 10, i * 10 + 10))}))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(append, range(4)))
    assert t.read("raw.events").num_rows == 4 * 3 * 10
    assert t.version("raw.events") == 12
