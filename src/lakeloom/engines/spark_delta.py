"""Delta tables read and written by Spark without the delta-spark jars.

Reading: the snapshot's data files come from the Delta log (delta-rs), never from a folder
listing, and Spark reads exactly those Parquet files with the table's schema (columns a file
lacks come out null); partition values, which the files do not hold, are added from the log.

Writing: the executors write Parquet into a fresh folder under the table root, the driver
reads the footers of what they wrote (row counts, no data) and commits one ``add`` action per
file through delta-rs. Nothing is visible until that commit; a failure before it removes the
folder and leaves the table at its old version.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Field as DeltaField
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import DeltaError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from lakeloom.engines.base import TableRef
from lakeloom.engines.delta_log import arrow_filesystem, arrow_schema, data_files, is_local_uri
from lakeloom.engines.spark_types import col, spark_schema
from lakeloom.errors import ConcurrentWriteConflict, InvalidArgument

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "WrittenFiles",
    "check_partitioning",
    "commit_files",
    "discard",
    "hadoop_options",
    "read_snapshot",
    "spark_read_path",
    "spark_write_path",
    "write_files",
]

#: Above this many partitions a read joins partition values by file name instead of
#: building one scan per partition (query plans grow with every scan).
UNION_LIMIT = 32
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_FILE_COL = "__lakeloom_file"


#: Hadoop (s3a) options from delta-rs storage options.
_S3_OPTIONS = {
    "aws_access_key_id": "fs.s3a.access.key",
    "aws_secret_access_key": "fs.s3a.secret.key",
    "aws_session_token": "fs.s3a.session.token",
    "aws_endpoint_url": "fs.s3a.endpoint",
    "aws_endpoint": "fs.s3a.endpoint",
    "aws_region": "fs.s3a.endpoint.region",
}


# -- paths -----------------------------------------------------------------------------
def spark_write_path(uri: str) -> str:
    """The path Spark (Hadoop) uses for ``uri``: absolute local paths, ``s3a://`` for S3."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" not in uri:
        return os.path.abspath(uri)
    scheme, rest = uri.split("://", 1)
    return ("s3a" if scheme in ("s3", "s3a") else scheme) + "://" + rest


def hadoop_options(ref: TableRef) -> dict[str, str]:
    """Session settings that let Spark reach an S3 table with its delta-rs storage options."""
    if not ref.storage_options or is_local_uri(ref.uri):
        return {}
    opts = {k.lower(): v for k, v in ref.storage_options.items()}
    out = {hadoop: opts[key] for key, hadoop in _S3_OPTIONS.items() if opts.get(key)}
    if opts.get("aws_endpoint_url") or opts.get("aws_endpoint"):
        out["fs.s3a.path.style.access"] = "true"
    if opts.get("aws_allow_http", "").lower() == "true":
        out["fs.s3a.connection.ssl.enabled"] = "false"
    return out


def spark_read_path(uri: str) -> str:
    """Like :func:`spark_write_path`, with Hadoop glob characters escaped (reads glob)."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", spark_write_path(uri))


# -- reading ---------------------------------------------------------------------------
def read_snapshot(spark: SparkSession, dt: DeltaTable) -> DataFrame:
    """The rows of the loaded snapshot ``dt`` as a DataFrame (distributed, lazy)."""
    from pyspark.sql import functions as F

    schema = arrow_schema(dt)
    sschema = spark_schema(schema)
    files = data_files(dt)
    if not files:
        return spark.createDataFrame([], sschema)
    parts = [c for c in dt.metadata().partition_columns if c in schema.names]
    file_schema = type(sschema)([f for f in sschema.fields if f.name not in parts])
    reader = spark.read.schema(file_schema)
    if not parts:
        return reader.parquet(*[spark_read_path(f.uri) for f in files])

    ptypes = {f.name: f.dataType for f in sschema.fields if f.name in parts}
    groups: dict[tuple[Any, ...], list[str]] = {}
    for f in files:
        key = tuple(f.partition_values.get(c) for c in parts)
        groups.setdefault(key, []).append(f.uri)
    basenames = [u.rsplit("/", 1)[-1] for u in (f.uri for f in files)]
    by_name = len(groups) > UNION_LIMIT and (
        len(set(basenames)) == len(basenames) and all(_SAFE_FILE_NAME.match(b) for b in basenames)
    )
    if by_name:
        from pyspark.sql.types import StringType, StructField, StructType

        rows = [(u.rsplit("/", 1)[-1], *key) for key, uris in groups.items() for u in uris]
        mapping = spark.createDataFrame(
            rows,
            StructType(
                [StructField(_FILE_COL, StringType(), False)]
                + [StructField(c, ptypes[c], True) for c in parts]
            ),
        )
        data = reader.parquet(*[spark_read_path(f.uri) for f in files]).withColumn(
            _FILE_COL, F.element_at(F.split(F.col("_metadata.file_path"), "/"), -1)
        )
        joined = data.join(F.broadcast(mapping), on=_FILE_COL)
        return joined.select(*[col(c) for c in schema.names])

    frames = []
    for key, uris in groups.items():
        values = dict(zip(parts, key, strict=True))
        scan = reader.parquet(*[spark_read_path(u) for u in uris])
        frames.append(
            scan.select(
                *[
                    F.lit(values[c]).cast(ptypes[c]).alias(c) if c in values else col(c)
                    for c in schema.names
                ]
            )
        )
    return reduce(lambda a, b: a.unionAll(b), frames)


# -- writing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WrittenFiles:
    """Parquet files Spark wrote into ``folder`` (relative to the table root), not committed."""

    folder: str
    adds: list[AddAction]


def _filesystem(ref: TableRef) -> tuple[pafs.FileSystem, str]:
    """A filesystem for the table's files and the table root's path in it."""
    fs, root = arrow_filesystem(ref.uri, ref.storage_options)
    return fs, root.rstrip("/")


def _unescape(fragment: str) -> str:
    """Undo Spark's escaping of partition folder names (``%XX``)."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), fragment)


def _partition_values(rel_dir: str, partition_by: Sequence[str]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for segment in [s for s in rel_dir.split("/") if s]:
        key, sep, raw = segment.partition("=")
        if not sep:
            continue
        value = _unescape(raw)
        values[_unescape(key)] = None if value == _HIVE_NULL else value
    missing = [c for c in partition_by if c not in values]
    if missing:
        raise AssertionError(f"no value for partition column(s) {missing} in {rel_dir!r}")
    return {c: values[c] for c in partition_by}


def write_files(df: DataFrame, ref: TableRef, partition_by: Sequence[str]) -> WrittenFiles:
    """Write ``df`` as Parquet under a fresh folder of the table and describe each file."""
    folder = f"spark-{uuid.uuid4().hex}"
    writer = df.write.mode("error")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    try:
        writer.parquet(spark_write_path(ref.uri.rstrip("/") + "/" + folder))
        return WrittenFiles(folder, _describe(ref, folder, partition_by))
    except BaseException:
        discard(ref, folder)
        raise


def _describe(ref: TableRef, folder: str, partition_by: Sequence[str]) -> list[AddAction]:
    fs, base = _filesystem(ref)
    infos = fs.get_file_info(pafs.FileSelector(f"{base}/{folder}", recursive=True))
    files: list[pafs.FileInfo] = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        if info.base_name.startswith((".", "_")):
            fs.delete_file(info.path)  # checksums and markers: not table data
            continue
        files.append(info)

    def footer(info: pafs.FileInfo) -> int:
        with fs.open_input_file(info.path) as fh:
            return int(pq.read_metadata(fh).num_rows)

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(footer, files))
    adds = []
    for info, rows in zip(files, counts, strict=True):
        if rows == 0:
            fs.delete_file(info.path)  # Spark writes empty files for empty tasks
            continue
        rel = info.path[len(base) + 1 :]
        rel_dir = rel[len(folder) : -len(info.base_name)]
        mtime = info.mtime_ns // 1_000_000 if info.mtime_ns is not None else 0
        adds.append(
            AddAction(
                path=rel,
                size=int(info.size or 0),
                partition_values=_partition_values(rel_dir, partition_by),
                modification_time=int(mtime),
                data_change=True,
                stats=json.dumps({"numRecords": rows}),
            )
        )
    return adds


def discard(ref: TableRef, folder: str) -> None:
    """Delete a folder of written files unless the table's latest version uses them.

    Best effort: what is left behind is unreferenced and goes with the next vacuum.
    """
    opts = dict(ref.storage_options) or None
    try:
        if DeltaTable.is_deltatable(ref.uri, storage_options=opts):
            # A commit can succeed and still raise (e.g. in a post-commit checkpoint).
            marker = f"/{folder}/"
            if any(marker in uri for uri in DeltaTable(ref.uri, storage_options=opts).file_uris()):
                return
    except (OSError, DeltaError):
        return
    try:
        fs, base = _filesystem(ref)
        fs.delete_dir(f"{base}/{folder}")
    except (OSError, DeltaError):
        pass


def commit_files(
    ref: TableRef,
    written: WrittenFiles,
    *,
    mode: str,
    schema: pa.Schema,
    partition_by: Sequence[str],
    replace_table: bool = False,
    snapshot: DeltaTable | None = None,
) -> None:
    """Commit ``written`` to the table in one transaction (two when columns are added).

    ``mode`` is "append" or "overwrite" (the latter removes the files of ``snapshot``, or of
    the latest version). ``replace_table`` recreates the table's metadata (new partitioning).
    An append that adds columns first commits them (ADD COLUMN; delta-rs cannot yet change
    the schema in an append transaction), then the files.
    """
    opts = dict(ref.storage_options) or None
    dschema = DeltaSchema.from_arrow(schema)
    if not DeltaTable.is_deltatable(ref.uri, storage_options=opts) or replace_table:
        dt = DeltaTable(ref.uri, storage_options=opts) if replace_table else None
        try:
            create_table_with_add_actions(
                ref.uri,
                dschema,
                written.adds,
                mode="overwrite" if replace_table else "error",
                partition_by=list(partition_by) or None,
                name=dt.metadata().name if dt else None,
                description=dt.metadata().description if dt else None,
                configuration=dt.metadata().configuration if dt else None,
                storage_options=opts,
            )
        except DeltaError as exc:
            if "exist" in str(exc).lower():
                raise ConcurrentWriteConflict(
                    f"table {ref.name} was created by a concurrent writer; nothing was "
                    "written, retry it"
                ) from None
            raise
        return
    dt = snapshot if snapshot is not None else DeltaTable(ref.uri, storage_options=opts)
    current = arrow_schema(dt)
    if mode == "append":
        new = [f for f in schema if current.get_field_index(f.name) < 0]
        if new:
            dt.alter.add_columns([DeltaField.from_arrow(f) for f in new])
            dt = DeltaTable(ref.uri, storage_options=opts)
        schema = arrow_schema(dt)
    actions: list[AddAction | RemoveAction] = list(written.adds)
    dt.create_write_transaction(
        actions, mode=mode, schema=schema, partition_by=list(partition_by) or None
    )


def check_partitioning(
    name: str,
    schema: pa.Schema,
    wanted: Sequence[str] | None,
    existing: Sequence[str] | None,
    *,
    may_change: bool,
) -> list[str]:
    """The partition columns of a write, validated like delta-rs does for the local engine."""
    parts = list(wanted) if wanted else list(existing or [])
    if wanted and existing is not None and list(wanted) != list(existing) and not may_change:
        raise InvalidArgument(
            f"cannot write table {name}: its partition columns are {list(existing)}, the write "
            f"asks for {list(wanted)}; to change them overwrite it with "
            "schema_mode='overwrite'"
        )
    missing = [c for c in parts if c not in schema.names]
    if missing:
        raise InvalidArgument(
            f"cannot write table {name}: partition column(s) {', '.join(map(repr, missing))} "
            f"not in the data; its columns: {', '.join(schema.names)}"
        )
    if parts and len(parts) >= len(schema.names):
        raise InvalidArgument(
            f"cannot write table {name}: every column is a partition column; "
            "keep at least one data column"
        )
    return parts
