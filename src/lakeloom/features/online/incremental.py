"""Which rows an incremental publish reads: those of the data files added since a version.

The Delta log tells which data files the table gained since the version recorded at the last
publish (the files of the current version that the recorded version did not have: appends,
merges and compactions all add files). Their statistics give the earliest event time among
the new rows, and the rows from that time on are read at the current version (``ts >=
earliest``, a filter that the Parquet statistics of older files skip); the store's
newer-wins rule then ignores those older than what it holds. Late-arriving rows are
therefore published too: the bound comes from the new rows themselves, not from a watermark
of what was published. Files committed without Delta statistics (Spark writes without
delta-spark) are bounded by their Parquet footers; without any statistics, or without a
timestamp key, every row of the version is read (same result, more work).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakeloom.engines.base import Engine, Frame, TableRef
from lakeloom.engines.delta_log import arrow_filesystem, open_delta
from lakeloom.features.online.base import OnlineTableSpec

__all__ = ["changed_rows"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def changed_rows(
    engine: Engine,
    ref: TableRef,
    spec: OnlineTableSpec,
    previous: int,
    version: int,
    columns: Sequence[str],
) -> Frame | None:
    """The rows an incremental publish reads (None: the table gained no data files)."""
    if previous == version:
        return None
    old = pa.table(open_delta(ref, version=previous).get_add_actions(flatten=True))
    new = pa.table(open_delta(ref, version=version).get_add_actions(flatten=True))
    if new.num_rows == 0:
        return None
    gained = new.filter(pc.invert(pc.is_in(new.column("path"), value_set=old.column("path"))))
    if gained.num_rows == 0:
        return None
    where = None
    if spec.timestamp_key is not None:
        low = _earliest(ref, gained, spec.timestamp_key)
        if low is not None:
            where = _at_or_after(engine, spec.timestamp_key, low)
    return engine.read(ref, version=version, columns=list(columns), filter=where)


def _earliest(ref: TableRef, files: pa.Table, ts: str) -> datetime | date | None:
    """The earliest event time in ``files`` (Delta add actions), from the Delta statistics or,
    where the log has none (files committed for Spark), the Parquet footers; None when a file
    has no statistics or a null time (then every row is read)."""
    paths = files.column("path").to_pylist()
    lows = files.column(f"min.{ts}").to_pylist() if f"min.{ts}" in files.column_names else []
    nulls = (
        files.column(f"null_count.{ts}").to_pylist()
        if f"null_count.{ts}" in files.column_names
        else []
    )
    found: list[Any] = []
    for i, path in enumerate(paths):
        low = lows[i] if lows else None
        if low is not None and nulls and nulls[i] == 0:
            found.append(low)
            continue
        low = _footer_min(ref, path, ts)
        if low is None:
            return None
        found.append(low)
    values = [_naive_utc(v) for v in found]
    return min(values) if values else None


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _footer_min(ref: TableRef, path: str, ts: str) -> Any:
    """The least ``ts`` in one data file by its Parquet footer (None: unknown or nulls)."""
    if "://" in path or path.startswith("/"):
        return None
    fs, root = arrow_filesystem(ref.uri, ref.storage_options)
    try:
        with fs.open_input_file(f"{root}/{unquote(path)}") as fh:
            meta = pq.ParquetFile(fh).metadata
    except (OSError, pa.ArrowException):
        return None
    index = meta.schema.to_arrow_schema().get_field_index(ts)
    if index < 0:
        return None
    low = None
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if stats is None or not stats.has_min_max or not stats.has_null_count or stats.null_count:
            return None
        low = stats.min if low is None else min(low, stats.min)
    return low


def _at_or_after(engine: Engine, column: str, low: Any) -> str:
    """A SQL filter (DuckDB and Spark alike) keeping rows with ``column >= low``, less 1 ms
    (Delta statistics keep milliseconds)."""
    name = (
        column
        if _IDENT.match(column)
        else (
            "`" + column.replace("`", "``") + "`"
            if engine.name == "spark"
            else '"' + column.replace('"', '""') + '"'
        )
    )
    if isinstance(low, datetime):
        low = _naive_utc(low) - timedelta(milliseconds=1)
        return f"{name} >= TIMESTAMP '{low.isoformat(sep=' ', timespec='microseconds')}'"
    return f"{name} >= DATE '{low.isoformat()}'"
