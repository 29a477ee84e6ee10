"""What both engines need from a Delta table's log: its snapshot, schema and data files.

Reading goes through the files that the log lists at a version (never a folder listing: a
folder also holds files that an overwrite replaced). Commits go through delta-rs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from lakeloom.engines.base import TableRef
from lakeloom.errors import (
    ConcurrentWriteConflict,
    InvalidArgument,
    TableNotFound,
    UnsupportedTableFeature,
)

__all__ = [
    "DataFile",
    "arrow_schema",
    "data_files",
    "is_local_uri",
    "open_delta",
    "table_exists",
    "with_commit_retries",
]

#: Reader features that reading the listed Parquet files handles correctly.
SUPPORTED_READER_FEATURES = frozenset({"timestampNtz"})

T = TypeVar("T")


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of a snapshot, with its Delta partition values (typed)."""

    uri: str
    size: int
    rows: int | None
    partition_values: dict[str, object]


def is_local_uri(uri: str) -> bool:
    """True for a plain path or ``file://`` URI."""
    return "://" not in uri or uri.startswith("file://")


def table_exists(ref: TableRef) -> bool:
    """Whether a Delta table exists at ``ref``."""
    return DeltaTable.is_deltatable(ref.uri, storage_options=dict(ref.storage_options) or None)


def open_delta(
    ref: TableRef, *, version: int | None = None, timestamp: datetime | None = None
) -> DeltaTable:
    """Open ``ref`` at a version or timestamp, with errors that say what exists."""
    if version is not None and timestamp is not None:
        raise InvalidArgument("pass version or timestamp, not both")
    opts = dict(ref.storage_options) or None
    try:
        dt = DeltaTable(ref.uri, storage_options=opts)
    except TableNotFoundError:
        raise TableNotFound(ref.name) from None
    latest = dt.version()
    if version is not None:
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= latest:
            raise InvalidArgument(
                f"table {ref.name} has versions 0 to {latest}; version {version!r} does not exist"
            )
        if version != latest:
            try:
                dt.load_as_version(version)
            except DeltaError as exc:
                raise InvalidArgument(
                    f"version {version} of table {ref.name} cannot be read (its log was "
                    f"cleaned up?): {exc}"
                ) from None
    elif timestamp is not None:
        ts = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
        try:
            dt.load_as_version(ts)
        except (DeltaError, ValueError, OSError) as exc:
            raise InvalidArgument(
                f"table {ref.name} has no version at or before {ts.isoformat()}: {exc}"
            ) from None
    return dt


def check_readable(dt: DeltaTable, ref: TableRef, engine: str) -> None:
    """Refuse tables that use reader features reading Parquet files directly would get wrong."""
    features = set(dt.protocol().reader_features or ())
    unsupported = sorted(features - SUPPORTED_READER_FEATURES)
    if unsupported:
        raise UnsupportedTableFeature(
            f"table {ref.name} uses Delta reader feature(s) {', '.join(unsupported)}, which the "
            f"{engine} engine cannot read; rewrite it without them (e.g. REORG/purge "
            "deletion vectors in Spark) or read it with a delta-spark session"
        )


def arrow_schema(dt: DeltaTable) -> pa.Schema:
    """The table's schema as a ``pyarrow.Schema``."""
    return pa.schema(dt.schema().to_arrow())


def data_files(dt: DeltaTable) -> list[DataFile]:
    """The Parquet files of the loaded snapshot, as absolute URIs with partition values."""
    if not dt.file_uris():
        return []
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    rows: list[int | None] = (
        actions.column("num_records").to_pylist()
        if "num_records" in actions.column_names
        else [None] * len(paths)
    )
    part_cols = [c for c in actions.column_names if c.startswith("partition.")]
    parts = {c[len("partition.") :]: actions.column(c).to_pylist() for c in part_cols}
    out: list[DataFile] = []
    for i, path in enumerate(paths):
        out.append(
            DataFile(
                uri=_join(dt.table_uri, path),
                size=int(sizes[i]),
                rows=rows[i],
                partition_values={k: v[i] for k, v in parts.items()},
            )
        )
    return out


def _join(root: str, path: str) -> str:
    if "://" in path or path.startswith("/"):
        return path
    from urllib.parse import unquote

    root = root[len("file://") :] if root.startswith("file://") else root
    return root.rstrip("/") + "/" + unquote(path)


def with_commit_retries(
    fn: Callable[[], T], *, table: str, attempts: int = 5, what: str = "write"
) -> T:
    """Run a commit, retrying when another writer committed first."""
    delay = 0.05
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except CommitFailedError as exc:
            if attempt == attempts:
                raise ConcurrentWriteConflict(
                    f"{what} to table {table} conflicted with a concurrent writer {attempts} "
                    f"times ({str(exc).splitlines()[0]}); nothing was written, retry it"
                ) from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
