"""The local engine: delta-rs for the Delta log and commits, Arrow and DuckDB for compute.

Reads build a ``pyarrow.dataset`` over exactly the Parquet files the log lists (local disk, or
an object store through pyarrow's filesystem), so nothing is copied twice; SQL runs in DuckDB
over those same files, with lakehouse names resolved from the catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import ColumnProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError

from lakeloom.engines.arrow_input import conform, to_arrow_input
from lakeloom.engines.base import (
    BatchFn,
    Catalog,
    Frame,
    SchemaMode,
    SqlFunction,
    TableRef,
    WriteMode,
)
from lakeloom.engines.delta_log import (
    arrow_filesystem,
    arrow_schema,
    check_readable,
    data_files,
    is_local_uri,
    open_delta,
    table_exists,
    with_commit_retries,
)
from lakeloom.engines.merge_checks import check_key_values, check_keys_in, merge_keys
from lakeloom.engines.profile_spec import ProfileSpec
from lakeloom.errors import (
    ConcurrentWriteConflict,
    InvalidArgument,
    InvalidTableName,
    LakeloomError,
    SchemaMismatch,
    TableNotFound,
)

__all__ = ["LocalEngine", "quote_ident"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

#: DuckDB's own catalogue schemas: names in them are DuckDB's, not the lakehouse's.
_SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog"})

#: Parquet layout of the files the local engine writes: about 1M rows per row group (what
#: pyarrow writes; Spark and DuckDB parallelise over row groups) in files of up to 512 MiB.
_TARGET_FILE_SIZE = 512 * 2**20
_ROW_GROUP_ROWS = 1024 * 1024
_WRITE_BATCH_ROWS = 8192
#: Rows looked at to decide which columns are worth dictionary-encoding.
_DICTIONARY_SAMPLE_ROWS = 4096


def _writer_properties(sample: pa.Table | pa.RecordBatch | None = None) -> WriterProperties:
    """Snappy-compressed Parquet; dictionary encoding only where values repeat.

    Parquet writers try a dictionary for every column and give it up once it grows past a
    page, which costs a lot of CPU on columns of mostly distinct values (ids, measurements,
    event times). A sample of the data tells which columns those are.
    """
    columns: dict[str, ColumnProperties] = {}
    if sample is not None and sample.num_rows >= 1024:
        sample = sample.slice(0, _DICTIONARY_SAMPLE_ROWS)
        for f, col in zip(sample.schema, sample.columns, strict=True):
            if "." in f.name or not (pa.types.is_primitive(f.type) or pa.types.is_string(f.type)):
                continue
            present = len(col) - col.null_count
            if present and pc.count_distinct(col).as_py() > present // 2:
                columns[f.name] = ColumnProperties(dictionary_enabled=False)
    return WriterProperties(
        compression="SNAPPY",
        max_row_group_size=_ROW_GROUP_ROWS,
        write_batch_size=_WRITE_BATCH_ROWS,
        column_properties=columns or None,
    )


def _peek(reader: pa.RecordBatchReader) -> tuple[pa.RecordBatch | None, pa.RecordBatchReader]:
    """The first batch of a stream, and a stream that still yields every batch."""
    try:
        first = reader.read_next_batch()
    except StopIteration:
        return None, pa.RecordBatchReader.from_batches(reader.schema, [])

    def batches() -> Iterator[pa.RecordBatch]:
        yield first
        yield from reader

    return first, pa.RecordBatchReader.from_batches(reader.schema, batches())


def _name_parts(raw: str) -> list[str]:
    """The dotted parts of a table reference as DuckDB prints it (``raw.x AS a``, ``"a.b"``)."""
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            j = i + 1
            while True:
                k = raw.find('"', j)
                if k < 0:
                    buf.append(raw[j:])
                    i = len(raw)
                    break
                if raw.startswith('""', k):
                    buf.append(raw[j:k] + '"')
                    j = k + 2
                    continue
                buf.append(raw[j:k])
                i = k + 1
                break
            continue
        if ch == ".":
            parts.append("".join(buf))
            buf = []
        elif ch.isspace():
            break
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def _lakehouse_name(raw: str, catalog: Catalog) -> str | None:
    """The ``schema.table`` a SQL table reference names, or None for DuckDB's own schemas.

    Anything that is not two plain identifiers (a file path, ``a.b.c``, a quoted name with
    ``;``, ``/``, spaces or quotes) is refused: SQL reads lakehouse tables only.
    """
    parts = _name_parts(raw.strip())
    shown = ".".join(parts)
    if len(parts) == 2 and parts[0].lower() in _SYSTEM_SCHEMAS:
        return None
    if not all(_IDENT.match(p) for p in parts) or len(parts) > 2:
        raise InvalidTableName(
            f"invalid table name {shown!r} in the SQL query: tables are schema.table with "
            "letters, digits and underscores (e.g. raw.customers); files and paths cannot "
            "be queried by name"
        )
    if len(parts) == 1:
        raise TableNotFound(shown, catalog.table_names())
    return f"{parts[0].lower()}.{parts[1].lower()}"


def _files_gone(table: TableRef, dt: DeltaTable, exc: BaseException) -> InvalidArgument:
    return InvalidArgument(
        f"version {dt.version()} of table {table.name} cannot be read: its data files were "
        f"removed (vacuum deletes old versions' files unless they are tagged): "
        f"{_first_line(exc)}"
    )


class _StreamErrors:
    """Remembers the exception a streamed input raised, which delta-rs only reports as text."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def tap(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except BaseException as exc:
                self.error = exc
                raise

        return pa.RecordBatchReader.from_batches(reader.schema, batches())


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL (DuckDB, DataFusion and Spark all accept double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class LocalEngine:
    """DuckDB + Arrow + delta-rs on one machine. Stateless: safe to share between threads."""

    name = "local"

    def __init__(self, *, threads: int | None = None) -> None:
        self._threads = threads

    # -- reading -----------------------------------------------------------------------
    def _dataset(self, dt: DeltaTable, ref: TableRef) -> pads.FileSystemDataset:
        """A scannable view of exactly the Parquet files of the loaded snapshot.

        Local files are read from disk, object-store files through pyarrow's own filesystem
        (S3, GCS...) with the table's storage options; either way scans are lazy, with
        column and filter pushdown.
        """
        check_readable(dt, ref, self.name)
        schema = arrow_schema(dt)
        files = data_files(dt)
        fs, root = arrow_filesystem(dt.table_uri, ref.storage_options)
        prefix = dt.table_uri.rstrip("/") + "/"
        if is_local_uri(dt.table_uri):
            prefix = prefix[len("file://") :] if prefix.startswith("file://") else prefix
        paths = []
        for f in files:
            uri = f.uri[len("file://") :] if f.uri.startswith("file://") else f.uri
            if uri.startswith(prefix):
                paths.append(root + "/" + uri[len(prefix) :])
            elif "://" in uri:
                parsed = urlparse(uri)
                paths.append(parsed.netloc + parsed.path)
            else:
                paths.append(uri)
        partitions = []
        for f in files:
            expr = pads.scalar(True)
            for col, value in f.partition_values.items():
                field = pads.field(col)
                typ = schema.field(col).type
                expr = expr & (
                    field.is_null() if value is None else field == pa.scalar(value).cast(typ)
                )
            partitions.append(expr)
        return pads.FileSystemDataset.from_paths(
            paths,
            schema=schema,
            format=pads.ParquetFileFormat(),
            filesystem=fs,
            partitions=partitions,
        )

    def read(
        self,
        table: TableRef,
        *,
        version: int | None = None,
        timestamp: datetime | None = None,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> pa.Table:
        """The table's rows as one Arrow table (see :meth:`Engine.read`)."""
        dt = open_delta(table, version=version, timestamp=timestamp)
        data = self._dataset(dt, table)
        if columns is not None:
            missing = [c for c in columns if c not in data.schema.names]
            if missing:
                raise SchemaMismatch(
                    f"table {table.name} has no column(s) {', '.join(map(repr, missing))}; "
                    f"its columns: {', '.join(data.schema.names)}"
                )
        if filter is None:
            try:
                return data.to_table(columns=list(columns) if columns is not None else None)
            except FileNotFoundError as exc:
                raise _files_gone(table, dt, exc) from None
        cols = ", ".join(quote_ident(c) for c in columns) if columns is not None else "*"
        con = self._connect()
        try:
            con.register("__lakeloom_t", data)
            try:
                return con.sql(f"select {cols} from __lakeloom_t where {filter}").to_arrow_table()
            except duckdb.Error as exc:
                if isinstance(exc, duckdb.IOException) or "No such file" in str(exc):
                    raise _files_gone(table, dt, exc) from None
                raise InvalidArgument(
                    f"filter {filter!r} on table {table.name} is not valid: {_first_line(exc)}"
                ) from None
        finally:
            con.close()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("set TimeZone='UTC'")
        if self._threads:
            con.execute(f"set threads={int(self._threads)}")
        return con

    def sql(
        self, query: str, catalog: Catalog, *, functions: Sequence[SqlFunction] = ()
    ) -> pa.Table:
        """Run ``query`` in DuckDB with ``schema.table`` names bound to lakehouse tables.

        One statement only; every table it names must be a lakehouse table (``schema.table``).
        ``functions`` are callable in it (:mod:`lakeloom.engines.sql_functions`).
        """
        from lakeloom.engines import sql_functions

        if not query or not query.strip():
            raise InvalidArgument("the SQL query is empty")
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as exc:
            raise InvalidArgument(f"SQL failed: {_first_line(exc)}") from None
        if len(statements) > 1:
            raise InvalidArgument(
                f"the SQL text holds {len(statements)} statements; run one query at a time"
            )
        query, calls = sql_functions.rewrite_calls(query, functions, sql_functions.duckdb_row)
        errors = sql_functions.FunctionErrors()
        con = self._connect()
        try:
            sql_functions.register_duckdb(con, calls, errors)
            for name in self._referenced_tables(query, catalog):
                self._bind(con, catalog.resolve(name))
            try:
                result = con.sql(query)
                return pa.table({}) if result is None else result.to_arrow_table()
            except duckdb.Error as exc:
                if isinstance(errors.error, LakeloomError):
                    raise errors.error from None
                raise InvalidArgument(f"SQL failed: {_first_line(exc)}") from None
        finally:
            con.close()

    @staticmethod
    def _referenced_tables(query: str, catalog: Catalog) -> list[str]:
        try:
            found = duckdb.get_table_names(query, qualified=True)
        except duckdb.Error:
            # Some statements only bind with their tables present: bind every table.
            return catalog.table_names()
        names = {_lakehouse_name(raw, catalog) for raw in found}
        return sorted(n for n in names if n is not None)

    def _bind(self, con: duckdb.DuckDBPyConnection, ref: TableRef) -> None:
        dt = open_delta(ref)
        schema, table = quote_ident(ref.schema), quote_ident(ref.table)
        con.execute(f"create schema if not exists {schema}")
        if is_local_uri(ref.uri) and not dt.metadata().partition_columns:
            check_readable(dt, ref, self.name)
            files = [
                f.uri[len("file://") :] if f.uri.startswith("file://") else f.uri
                for f in data_files(dt)
            ]
            if files:
                # DuckDB's own Parquet reader: parallel, with filter and projection pushdown.
                cols = ", ".join(quote_ident(c) for c in arrow_schema(dt).names)
                file_list = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
                con.execute(
                    f"create or replace view {schema}.{table} as select {cols} from "
                    f"read_parquet([{file_list}], union_by_name = true, "
                    "hive_partitioning = false)"
                )
                return
        alias = f"__lakeloom_{ref.schema}__{ref.table}"
        con.register(alias, self._dataset(dt, ref))
        con.execute(f"create or replace view {schema}.{table} as select * from {alias}")

    # -- writing -----------------------------------------------------------------------
    def write(
        self,
        table: TableRef,
        data: Frame,
        *,
        mode: WriteMode,
        schema_mode: SchemaMode | None = None,
        partition_by: Sequence[str] | None = None,
    ) -> int:
        """Append or overwrite through delta-rs (one atomic commit).

        An in-memory table is retried when another writer commits first (its schema checked
        again against the table as it then is). A streamed ``RecordBatchReader`` cannot be
        replayed: a conflict raises ``ConcurrentWriteConflict`` and nothing is written. An
        exception raised while streaming the input propagates as it was raised, and nothing
        is committed.
        """
        if mode not in ("append", "overwrite"):
            raise InvalidArgument(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if schema_mode not in (None, "merge", "overwrite"):
            raise InvalidArgument(
                f"schema_mode must be None, 'merge' or 'overwrite', got {schema_mode!r}"
            )
        arrow = to_arrow_input(data)
        opts = dict(table.storage_options) or None
        stream = _StreamErrors()

        def attempt() -> int:
            dt = None
            if table_exists(table):
                dt = DeltaTable(table.uri, storage_options=opts)
            existing = arrow_schema(dt) if dt is not None else None
            target = None if schema_mode == "overwrite" and mode == "overwrite" else existing
            conformed = conform(
                arrow, target, table.name, allow_new_columns=schema_mode in ("merge", "overwrite")
            )
            if isinstance(conformed, pa.RecordBatchReader):
                sample, conformed = _peek(stream.tap(conformed))
            else:
                sample = conformed
            try:
                write_deltalake(
                    dt if dt is not None else table.uri,
                    conformed,
                    mode=mode,
                    schema_mode=schema_mode if dt is not None else None,
                    partition_by=list(partition_by) if partition_by else None,
                    storage_options=opts if dt is None else None,
                    target_file_size=_TARGET_FILE_SIZE,
                    writer_properties=_writer_properties(sample),
                )
            except Exception:
                if stream.error is not None:
                    raise stream.error from None
                raise
            if dt is not None:
                return dt.version()
            return DeltaTable(table.uri, storage_options=opts).version()

        try:
            if isinstance(arrow, pa.Table):
                return with_commit_retries(attempt, table=table.name, what=mode)
            return attempt()
        except SchemaMismatchError as exc:
            raise SchemaMismatch(
                f"data does not fit table {table.name}: {_first_line(exc)}"
            ) from None
        except CommitFailedError as exc:
            raise ConcurrentWriteConflict(
                f"{mode} of a streamed input to table {table.name} conflicted with a "
                f"concurrent writer ({_first_line(exc)}); nothing was written. A stream "
                "cannot be replayed: retry with a new reader (or pass an in-memory table, "
                "which is retried automatically)"
            ) from None
        except DeltaError as exc:
            message = _first_line(exc)
            if "partition" in message.lower():
                raise InvalidArgument(f"cannot write table {table.name}: {message}") from None
            raise

    def merge(self, table: TableRef, data: Frame, *, keys: Sequence[str]) -> int:
        """Upsert on ``keys``: matching rows are updated, the others inserted."""
        keys = merge_keys(keys)
        arrow = self.to_arrow(to_arrow_input(data))
        check_keys_in(keys, arrow.column_names)
        nulls = {k: arrow.column(k).null_count for k in keys}
        distinct = arrow.group_by(keys).aggregate([]).num_rows if arrow.num_rows else 0
        check_key_values(table.name, keys, nulls, arrow.num_rows - distinct)
        if not table_exists(table):
            return self.write(table, arrow, mode="append")
        opts = dict(table.storage_options) or None
        existing = arrow_schema(DeltaTable(table.uri, storage_options=opts))
        check_keys_in(keys, existing.names, table=table.name)
        source = conform(arrow, existing, table.name)
        predicate = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in keys)

        def commit() -> int:
            dt = DeltaTable(table.uri, storage_options=opts)
            (
                dt.merge(source, predicate, source_alias="s", target_alias="t")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            return dt.version()

        try:
            return with_commit_retries(commit, table=table.name, what="merge")
        except SchemaMismatchError as exc:
            raise SchemaMismatch(
                f"data does not fit table {table.name}: {_first_line(exc)}"
            ) from None

    # -- point in time (lakeloom.engines.local_pit) ------------------------------------
    def latest_per_key(
        self,
        table: TableRef,
        keys: Sequence[str],
        ts: str | None,
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """One row per key, the latest by ``ts`` (see :meth:`Engine.latest_per_key`)."""
        from lakeloom.engines import local_pit

        return local_pit.latest_per_key(self, table, keys, ts, version=version, columns=columns)

    def point_in_time_join(self, spine: Frame, lookups: Sequence[Any]) -> pa.Table:
        """Features as of each spine row (see :meth:`Engine.point_in_time_join`)."""
        from lakeloom.engines import local_pit

        return local_pit.point_in_time_join(self, spine, lookups)

    # -- batch mapping (lakeloom.engines.local_batches) ---------------------------------
    def map_batches(self, data: Frame, fn: BatchFn, schema: pa.Schema) -> pa.RecordBatchReader:
        """``fn`` over ``data``'s batches, streamed (see :meth:`Engine.map_batches`)."""
        from lakeloom.engines import local_batches

        if isinstance(data, TableRef):
            batch_rows = local_batches.BATCH_ROWS
            scan = self._dataset(open_delta(data), data).scanner(batch_size=batch_rows)
            data = scan.to_reader()
        return local_batches.map_batches(data, fn, schema)

    # -- profiles (lakeloom.engines.local_profile) --------------------------------------
    def profile(self, data: Frame | TableRef, spec: ProfileSpec) -> pa.Table:
        """DuckDB aggregates of ``data`` (see :meth:`Engine.profile`)."""
        from lakeloom.engines import local_profile

        return local_profile.profile(self, data, spec)

    # -- conversion --------------------------------------------------------------------
    def from_input(self, data: Any) -> pa.Table | pa.RecordBatchReader:
        """Arrow from pandas, polars, Arrow or Spark input."""
        return to_arrow_input(data)

    def to_arrow(self, frame: Frame) -> pa.Table:
        """One Arrow table from any supported frame."""
        data = to_arrow_input(frame)
        return data.read_all() if isinstance(data, pa.RecordBatchReader) else data

    def close(self) -> None:
        """Nothing to release: connections live for one call."""
