"""What both engines need from a Delta table's log: its snapshot, schema and data files.

Reading goes through the files that the log lists at a version (never a folder listing: a
folder also holds files that an overwrite replaced). Commits go through delta-rs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
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
    "arrow_filesystem",
    "arrow_schema",
    "commit_timestamp_ms",
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
    """Whether a Delta table exists at ``ref`` (its log holds a commit or a checkpoint)."""
    if is_local_uri(ref.uri):
        path = ref.uri[len("file://") :] if ref.uri.startswith("file://") else ref.uri
        try:
            with os.scandir(os.path.join(path, "_delta_log")) as entries:
                return any(e.name.endswith(".json") or ".checkpoint" in e.name for e in entries)
        except (FileNotFoundError, NotADirectoryError):
            return False
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
        # delta-rs goes by the log files' modification times, which object stores keep to
        # the second (and which fall back to version 0 for times before the table existed):
        # step back to the newest commit whose own timestamp is not after ``ts``.
        wanted = ts.timestamp() * 1000
        found = dt.version()
        # A log file is written (mtime) a little after its commit time: delta-rs can also
        # stop one version short of ``ts``, so step forward over commits made by ``ts``.
        while found < latest:
            following = commit_timestamp_ms(dt.table_uri, found + 1, ref.storage_options)
            if following is None or following > wanted:
                break
            found += 1
        while found >= 0:
            committed = commit_timestamp_ms(dt.table_uri, found, ref.storage_options)
            if committed is None or committed <= wanted:
                break
            found -= 1
        if found < 0:
            created = commit_timestamp_ms(dt.table_uri, 0, ref.storage_options) or 0
            raise InvalidArgument(
                f"table {ref.name} has no version at or before {ts.isoformat()}: it was "
                f"created at {datetime.fromtimestamp(created / 1000, UTC).isoformat()}"
            )
        if found != dt.version():
            dt.load_as_version(found)
    return dt


def commit_timestamp_ms(
    table_uri: str, version: int, options: Mapping[str, str] | None = None
) -> int | None:
    """When ``version`` was committed (ms since the epoch, from its commit info), or None."""
    import json

    fs, root = arrow_filesystem(table_uri, options)
    try:
        with fs.open_input_stream(f"{root}/_delta_log/{version:020d}.json") as fh:
            text = bytes(fh.read()).decode("utf-8")
    except (FileNotFoundError, OSError):
        return None
    for line in text.splitlines():
        if '"commitInfo"' not in line:
            continue
        try:
            info = json.loads(line).get("commitInfo") or {}
        except ValueError:
            return None
        value = info.get("inCommitTimestamp", info.get("timestamp"))
        return int(value) if isinstance(value, int | float) else None
    return None


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
    root = root[len("file://") :] if root.startswith("file://") else root
    return root.rstrip("/") + "/" + unquote(path)


def _option(options: Mapping[str, str], *names: str) -> str | None:
    lowered = {k.lower(): v for k, v in options.items()}
    for name in names:
        value = lowered.get(name.lower()) or os.environ.get(name.upper())
        if value:
            return value
    return None


def arrow_filesystem(
    uri: str, options: Mapping[str, str] | None = None
) -> tuple[pafs.FileSystem, str]:
    """A ``pyarrow`` filesystem reaching ``uri`` and the path of ``uri`` inside it.

    ``options`` are delta-rs storage options (``AWS_ENDPOINT_URL``, ``AWS_REGION``...), so
    the workspace's files and the tables' Parquet files are reached the same way delta-rs
    reaches the logs. Local paths and ``file://`` URIs give the local filesystem.
    """
    options = options or {}
    if is_local_uri(uri):
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        return pafs.LocalFileSystem(), os.path.abspath(path)
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        endpoint = _option(options, "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "endpoint")
        scheme = None
        if endpoint:
            ep = urlparse(endpoint)
            scheme, endpoint = ep.scheme or None, ep.netloc or ep.path
        fs = pafs.S3FileSystem(
            access_key=_option(options, "AWS_ACCESS_KEY_ID"),
            secret_key=_option(options, "AWS_SECRET_ACCESS_KEY"),
            session_token=_option(options, "AWS_SESSION_TOKEN"),
            region=_option(options, "AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_override=endpoint,
            scheme=scheme or "https",
        )
        return fs, (parsed.netloc + parsed.path).rstrip("/")
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path.rstrip("/")


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
