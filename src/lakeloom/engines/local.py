"""The local engine: delta-rs for the Delta log and commits, Arrow and DuckDB for compute.

Reads build a ``pyarrow.dataset`` over exactly the Parquet files the log lists (local paths)
or stream through delta-rs' query engine (object stores), so nothing is copied twice; SQL runs
in DuckDB over those same files, with lakehouse names resolved from the catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError

from lakeloom.engines.arrow_input import conform, to_arrow_input
from lakeloom.engines.base import Catalog, Frame, SchemaMode, TableRef, WriteMode
from lakeloom.engines.delta_log import (
    arrow_schema,
    check_readable,
    data_files,
    is_local_uri,
    open_delta,
    table_exists,
    with_commit_retries,
)
from lakeloom.errors import (
    ConcurrentWriteConflict,
    InvalidArgument,
    SchemaMismatch,
)

__all__ = ["LocalEngine", "quote_ident"]

_NAME = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")


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
    def _dataset(self, dt: DeltaTable, ref: TableRef) -> pads.Dataset | pa.Table:
        """A scannable view of the loaded snapshot (a dataset for local paths)."""
        check_readable(dt, ref, self.name)
        schema = arrow_schema(dt)
        if not is_local_uri(ref.uri):
            reader = QueryBuilder().register("t", dt).execute("select * from t")
            return pa.Table.from_batches(list(reader), schema=None).cast(schema)
        files = data_files(dt)
        paths = [f.uri[len("file://") :] if f.uri.startswith("file://") else f.uri for f in files]
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
            filesystem=pafs.LocalFileSystem(),
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
            if isinstance(data, pa.Table):
                return data.select(list(columns)) if columns is not None else data
            return data.to_table(columns=list(columns) if columns is not None else None)
        cols = ", ".join(quote_ident(c) for c in columns) if columns is not None else "*"
        con = self._connect()
        try:
            con.register("__lakeloom_t", data)
            try:
                return con.sql(f"select {cols} from __lakeloom_t where {filter}").to_arrow_table()
            except duckdb.Error as exc:
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

    def sql(self, query: str, catalog: Catalog) -> pa.Table:
        """Run ``query`` in DuckDB with ``schema.table`` names bound to lakehouse tables."""
        if not query or not query.strip():
            raise InvalidArgument("the SQL query is empty")
        con = self._connect()
        try:
            for name in self._referenced_tables(query, catalog):
                self._bind(con, catalog.resolve(name))
            try:
                result = con.sql(query)
            except duckdb.Error as exc:
                raise InvalidArgument(f"SQL failed: {_first_line(exc)}") from None
            if result is None:
                return pa.table({})
            try:
                return result.to_arrow_table()
            except duckdb.Error as exc:
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
        names = set()
        for raw in found:
            m = _NAME.match(raw.replace('"', ""))
            if m:
                names.add(f"{m.group(1)}.{m.group(2)}")
        return sorted(names)

    def _bind(self, con: duckdb.DuckDBPyConnection, ref: TableRef) -> None:
        dt = open_delta(ref)
        data = self._dataset(dt, ref)
        schema, table = quote_ident(ref.schema), quote_ident(ref.table)
        con.execute(f"create schema if not exists {schema}")
        files = data.files if isinstance(data, pads.FileSystemDataset) else []
        partitioned = bool(dt.metadata().partition_columns)
        if files and not partitioned:
            # DuckDB's own Parquet reader: parallel, with filter and projection pushdown.
            cols = ", ".join(quote_ident(c) for c in data.schema.names)
            file_list = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(
                f"create or replace view {schema}.{table} as select {cols} from "
                f"read_parquet([{file_list}], union_by_name = true)"
            )
            return
        alias = f"__lakeloom_{ref.schema}__{ref.table}"
        con.register(alias, data)
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
        """Append or overwrite through delta-rs (one atomic commit)."""
        if mode not in ("append", "overwrite"):
            raise InvalidArgument(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if schema_mode not in (None, "merge", "overwrite"):
            raise InvalidArgument(
                f"schema_mode must be None, 'merge' or 'overwrite', got {schema_mode!r}"
            )
        arrow = to_arrow_input(data)
        opts = dict(table.storage_options) or None
        existing = None
        if table_exists(table):
            existing = arrow_schema(DeltaTable(table.uri, storage_options=opts))
        target = None if schema_mode == "overwrite" and mode == "overwrite" else existing
        conformed = conform(
            arrow, target, table.name, allow_new_columns=schema_mode in ("merge", "overwrite")
        )
        try:
            write_deltalake(
                table.uri,
                conformed,
                mode=mode,
                schema_mode=schema_mode if existing is not None else None,
                partition_by=list(partition_by) if partition_by else None,
                storage_options=opts,
            )
        except SchemaMismatchError as exc:
            raise SchemaMismatch(
                f"data does not fit table {table.name}: {_first_line(exc)}"
            ) from None
        except CommitFailedError as exc:
            raise ConcurrentWriteConflict(
                f"{mode} to table {table.name} conflicted with a concurrent writer "
                f"({_first_line(exc)}); nothing was written, retry it"
            ) from None
        except DeltaError as exc:
            message = _first_line(exc)
            if "partition" in message.lower():
                raise InvalidArgument(f"cannot write table {table.name}: {message}") from None
            raise
        return DeltaTable(table.uri, storage_options=opts).version()

    def merge(self, table: TableRef, data: Frame, *, keys: Sequence[str]) -> int:
        """Upsert on ``keys``: matching rows are updated, the others inserted."""
        keys = list(keys)
        if not keys:
            raise InvalidArgument("merge needs at least one key column")
        arrow = self.to_arrow(to_arrow_input(data))
        missing = [k for k in keys if k not in arrow.column_names]
        if missing:
            raise SchemaMismatch(
                f"merge key(s) {', '.join(map(repr, missing))} not in the data; its columns: "
                f"{', '.join(arrow.column_names)}"
            )
        for k in keys:
            if arrow.column(k).null_count:
                raise InvalidArgument(
                    f"merge key {k!r} has {arrow.column(k).null_count} null value(s); "
                    "keys must not be null"
                )
        if arrow.num_rows:
            distinct = arrow.group_by(keys).aggregate([]).num_rows
            if distinct != arrow.num_rows:
                raise InvalidArgument(
                    f"the data has {arrow.num_rows - distinct} row(s) with a repeated key "
                    f"({', '.join(keys)}); deduplicate before merging into {table.name}"
                )
        if not table_exists(table):
            return self.write(table, arrow, mode="append")
        opts = dict(table.storage_options) or None
        existing = arrow_schema(DeltaTable(table.uri, storage_options=opts))
        absent = [k for k in keys if k not in existing.names]
        if absent:
            raise SchemaMismatch(
                f"merge key(s) {', '.join(map(repr, absent))} not in table {table.name}; "
                f"its columns: {', '.join(existing.names)}"
            )
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
