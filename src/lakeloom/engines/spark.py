"""The Spark engine: the same Delta tables as the local engine, read and written by PySpark.

Work stays distributed: reads are lazy Spark DataFrames over the snapshot's files, writes go
from the executors straight to Parquet, and only small things (footers, key checks, the
Delta log) touch the driver. Sessions come from :mod:`lakeloom.engines.spark_session`.

With the delta-spark jars configured in the session (``spark.sql.extensions`` names
``DeltaSparkSessionExtension``) reads, writes and merges use Delta's own data source and
``MERGE INTO``; without them (the default: the jars need Maven) the engine reads the files
the Delta log lists and commits the files it writes through delta-rs
(:mod:`lakeloom.engines.spark_delta`). Either way the results equal the local engine's, which
one contract suite checks (``tests/engines/test_contract.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from lakeloom.engines import spark_session
from lakeloom.engines.arrow_input import conform, to_arrow_input
from lakeloom.engines.base import BatchFn, Catalog, SchemaMode, SqlFunction, TableRef, WriteMode
from lakeloom.engines.delta_log import (
    arrow_schema,
    check_readable,
    open_delta,
    table_exists,
    with_commit_retries,
)
from lakeloom.engines.merge_checks import check_key_values, check_keys_in, merge_keys
from lakeloom.engines.profile_spec import ProfileSpec
from lakeloom.engines.spark_delta import (
    check_partitioning,
    commit_files,
    discard,
    hadoop_options,
    read_snapshot,
    spark_write_path,
    write_files,
)
from lakeloom.engines.spark_sql import bind_table_names, missing_table_name
from lakeloom.engines.spark_types import conform_frame, is_dataframe, spark_schema, to_local_arrow
from lakeloom.errors import InvalidArgument, SchemaMismatch, TableNotFound
from lakeloom.settings import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkEngine"]

#: Spark error conditions that mean "this value does not fit the column's type".
_CAST_ERRORS = ("CAST_OVERFLOW", "CAST_INVALID_INPUT", "ARITHMETIC_OVERFLOW", "NUMERIC_VALUE")
#: Rows per partition of data that enters Spark from the driver (pandas, polars, Arrow).
_ROWS_PER_PARTITION = 1_000_000


def _parallelism(spark: Any) -> int:
    try:
        return int(spark.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect has no SparkContext
        return 8


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _is_spark_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("pyspark", "py4j"))


class SparkEngine:
    """PySpark (``local[*]``, a cluster master or Spark Connect) on the lakehouse's Delta tables.

    The session starts on first use and is shared by every engine of the process with the
    same master or Spark Connect URL; :meth:`close` stops it when this engine started it and
    no other engine uses it (it is stopped at interpreter exit in any case).

    >>> engine = SparkEngine(SparkSettings(master="local[2]"))  # doctest: +SKIP
    >>> engine.spark.range(3).count()  # doctest: +SKIP
    3
    """

    name = "spark"

    def __init__(self, settings: SparkSettings | None = None) -> None:
        self.settings = settings if settings is not None else SparkSettings()
        self._closed = False

    # -- the session -------------------------------------------------------------------
    @property
    def spark(self) -> SparkSession:
        """The live Spark session (started, or restarted after a stop, on demand)."""
        self._closed = False
        return spark_session.acquire(self.settings, self)

    @property
    def native_delta(self) -> bool:
        """Whether the session has delta-spark, which then does reads, writes and merges."""
        return spark_session.has_delta_extension(self.spark)

    def close(self) -> None:
        """Stop the session if this engine started it and no other engine uses it."""
        if not self._closed:
            self._closed = True
            spark_session.release(self.settings, self)

    def _apply_storage(self, spark: SparkSession, table: TableRef) -> None:
        """Pass a table's S3 storage options to Hadoop (s3a) for this session."""
        for key, value in hadoop_options(table).items():
            spark.conf.set(key, value)

    # -- reading -----------------------------------------------------------------------
    def read(
        self,
        table: TableRef,
        *,
        version: int | None = None,
        timestamp: datetime | None = None,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> DataFrame:
        """The table's rows as a lazy Spark DataFrame (see :meth:`Engine.read`)."""
        dt = open_delta(table, version=version, timestamp=timestamp)
        spark = self.spark
        self._apply_storage(spark, table)
        if spark_session.has_delta_extension(spark):
            df = (
                spark.read.format("delta")
                .option("versionAsOf", dt.version())
                .load(spark_write_path(table.uri))
            )
        else:
            check_readable(dt, table, self.name)
            df = read_snapshot(spark, dt)
        if columns is not None:
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise SchemaMismatch(
                    f"table {table.name} has no column(s) {', '.join(map(repr, missing))}; "
                    f"its columns: {', '.join(df.columns)}"
                )
        if filter is not None:
            try:
                df = df.filter(filter)
                df.schema  # noqa: B018 - analyse now (Spark Connect analyses lazily)
            except Exception as exc:
                if not _is_spark_error(exc):
                    raise
                raise InvalidArgument(
                    f"filter {filter!r} on table {table.name} is not valid: {_first_line(exc)}"
                ) from None
        if columns is not None:
            df = df.select(*[_quote(c) for c in columns])
        return df

    def sql(
        self, query: str, catalog: Catalog, *, functions: Sequence[SqlFunction] = ()
    ) -> DataFrame:
        """Run Spark SQL with ``schema.table`` names bound to lakehouse tables (latest version).

        Names are found by :func:`lakeloom.engines.spark_sql.bind_table_names`; a two-part
        name that is not a lakehouse table is left to Spark and, when Spark cannot resolve it
        either, raises :class:`TableNotFound`. ``functions`` are callable in it, as pandas
        UDFs (:mod:`lakeloom.engines.sql_functions`).
        """
        from lakeloom.engines import sql_functions

        if not query or not query.strip():
            raise InvalidArgument("the SQL query is empty")
        query, calls = sql_functions.rewrite_calls(query, functions, sql_functions.spark_row)
        known = catalog.table_names()
        bound = bind_table_names(query, known)
        frames = {key: self.read(catalog.resolve(name)) for key, name in bound.tables.items()}
        spark = self.spark
        sql_functions.register_spark(spark, calls)
        try:
            df = spark.sql(bound.text, None, **frames) if frames else spark.sql(query)
            df.schema  # noqa: B018 - analyse now (Spark Connect analyses lazily)
        except Exception as exc:
            if not _is_spark_error(exc):
                raise
            missing = missing_table_name(exc)
            if missing is not None:
                raise TableNotFound(missing, known) from None
            raise InvalidArgument(f"SQL failed: {_first_line(exc)}") from None
        return df

    # -- writing -----------------------------------------------------------------------
    def write(
        self,
        table: TableRef,
        data: Any,
        *,
        mode: WriteMode,
        schema_mode: SchemaMode | None = None,
        partition_by: Sequence[str] | None = None,
    ) -> int:
        """Append or overwrite from the executors; one Delta commit makes it visible."""
        if mode not in ("append", "overwrite"):
            raise InvalidArgument(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if schema_mode not in (None, "merge", "overwrite"):
            raise InvalidArgument(
                f"schema_mode must be None, 'merge' or 'overwrite', got {schema_mode!r}"
            )
        if schema_mode == "overwrite" and mode != "overwrite":
            raise InvalidArgument(
                "schema_mode='overwrite' replaces the schema and needs mode='overwrite'; "
                "to add columns while appending use schema_mode='merge'"
            )
        df = self.from_input(data)
        spark = self.spark
        self._apply_storage(spark, table)
        opts = dict(table.storage_options) or None
        dt = DeltaTable(table.uri, storage_options=opts) if table_exists(table) else None
        existing = arrow_schema(dt) if dt is not None else None
        existing_parts = list(dt.metadata().partition_columns) if dt is not None else None
        replace_schema = schema_mode == "overwrite"
        frame, target = conform_frame(
            df,
            None if replace_schema else existing,
            table.name,
            allow_new_columns=schema_mode is not None,
        )
        parts = check_partitioning(
            table.name, target, partition_by, existing_parts, may_change=replace_schema
        )
        if spark_session.has_delta_extension(spark):
            return self._native_write(table, frame, mode, schema_mode, parts)
        written = self._write_files(table, frame, parts)
        replace_table = existing_parts is not None and parts != existing_parts

        def commit() -> None:
            commit_files(
                table,
                written,
                mode=mode,
                schema=target,
                partition_by=parts,
                replace_table=replace_table,
            )

        try:
            with_commit_retries(commit, table=table.name, what=mode)
        except BaseException:
            discard(table, written.folder)
            raise
        return DeltaTable(table.uri, storage_options=opts).version()

    def _write_files(self, table: TableRef, frame: DataFrame, parts: Sequence[str]) -> Any:
        try:
            return write_files(frame, table, parts)
        except Exception as exc:
            if _is_spark_error(exc) and any(c in str(exc) for c in _CAST_ERRORS):
                raise SchemaMismatch(
                    f"data does not fit table {table.name}: {_first_line(exc)}"
                ) from None
            raise

    def _native_write(
        self,
        table: TableRef,
        frame: DataFrame,
        mode: str,
        schema_mode: SchemaMode | None,
        parts: Sequence[str],
    ) -> int:
        writer = frame.write.format("delta").mode(mode)
        if schema_mode == "merge":
            writer = writer.option("mergeSchema", "true")
        if schema_mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        if parts:
            writer = writer.partitionBy(*parts)
        writer.save(spark_write_path(table.uri))
        return DeltaTable(table.uri, storage_options=dict(table.storage_options) or None).version()

    def merge(self, table: TableRef, data: Any, *, keys: Sequence[str]) -> int:
        """Upsert on ``keys``: matching rows are replaced, the others inserted.

        Without delta-spark the new content (target rows whose key is not in the data, plus
        the data) is computed by Spark and committed as one overwrite of the version it was
        computed from; when another writer committed meanwhile it is computed again.
        """
        from pyspark.sql import functions as F

        keys = merge_keys(keys)
        df = self.from_input(data)
        check_keys_in(keys, df.columns)
        stats = df.select(
            F.count(F.lit(1)).alias("rows"),
            *[
                F.sum(F.col(_quote(k)).isNull().cast("long")).alias(f"k{i}")
                for i, k in enumerate(keys)
            ],
        ).first()
        counts = stats.asDict() if stats is not None else {}
        repeated = (
            df.groupBy(*[_quote(k) for k in keys])
            .count()
            .where(F.col("count") > 1)
            .select(F.sum(F.col("count") - 1).alias("n"))
            .first()
        )
        extra = int((repeated["n"] if repeated is not None else 0) or 0)
        nulls = {k: int(counts.get(f"k{i}") or 0) for i, k in enumerate(keys)}
        check_key_values(table.name, keys, nulls, extra)
        if not table_exists(table):
            return self.write(table, df, mode="append")
        opts = dict(table.storage_options) or None
        existing = arrow_schema(DeltaTable(table.uri, storage_options=opts))
        check_keys_in(keys, existing.names, table=table.name)
        source, _ = conform_frame(df, existing, table.name, allow_new_columns=False)
        if not counts.get("rows"):
            return DeltaTable(table.uri, storage_options=opts).version()  # nothing to merge
        spark = self.spark
        self._apply_storage(spark, table)
        if spark_session.has_delta_extension(spark):
            return self._native_merge(table, source, keys)

        def attempt() -> int:
            dt = open_delta(table)
            check_readable(dt, table, self.name)
            start = dt.version()
            schema = arrow_schema(dt)
            if schema != existing:
                raise CommitFailedError(f"the schema of {table.name} changed during the merge")
            parts = list(dt.metadata().partition_columns)
            target = read_snapshot(spark, dt)
            kept = target.join(source.select(*[_quote(k) for k in keys]), on=keys, how="left_anti")
            written = self._write_files(table, kept.unionByName(source), parts)
            try:
                if DeltaTable(table.uri, storage_options=opts).version() != start:
                    raise CommitFailedError(f"{table.name} changed during the merge")
                commit_files(
                    table, written, mode="overwrite", schema=schema, partition_by=parts, snapshot=dt
                )
            except BaseException:
                discard(table, written.folder)
                raise
            return DeltaTable(table.uri, storage_options=opts).version()

        return with_commit_retries(attempt, table=table.name, what="merge")

    def _native_merge(self, table: TableRef, source: DataFrame, keys: Sequence[str]) -> int:
        on = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in keys)
        path = spark_write_path(table.uri).replace("`", "``")

        def commit() -> int:
            self.spark.sql(
                f"MERGE INTO delta.`{path}` AS t USING {{source}} AS s ON {on} "
                "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *",
                source=source,
            ).collect()
            return DeltaTable(
                table.uri, storage_options=dict(table.storage_options) or None
            ).version()

        return with_commit_retries(commit, table=table.name, what="merge")

    # -- point in time (lakeloom.engines.spark_pit) ------------------------------------
    def latest_per_key(
        self,
        table: TableRef,
        keys: Sequence[str],
        ts: str | None,
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> DataFrame:
        """One row per key, the latest by ``ts`` (see :meth:`Engine.latest_per_key`)."""
        from lakeloom.engines import spark_pit

        return spark_pit.latest_per_key(self, table, keys, ts, version=version, columns=columns)

    def point_in_time_join(self, spine: Any, lookups: Sequence[Any]) -> DataFrame:
        """Features as of each spine row (see :meth:`Engine.point_in_time_join`)."""
        from lakeloom.engines import spark_pit

        return spark_pit.point_in_time_join(self, spine, lookups)

    # -- batch mapping (lakeloom.engines.spark_batches) ---------------------------------
    def map_batches(self, data: Any, fn: BatchFn, schema: pa.Schema) -> DataFrame:
        """``fn`` over ``data``'s batches on the executors (see :meth:`Engine.map_batches`)."""
        from lakeloom.engines import spark_batches

        frame = self.read(data) if isinstance(data, TableRef) else self.from_input(data)
        return spark_batches.map_batches(frame, fn, schema)

    # -- profiles (lakeloom.engines.spark_profile) --------------------------------------
    def profile(self, data: Any, spec: ProfileSpec) -> pa.Table:
        """Spark SQL aggregates of ``data`` (see :meth:`Engine.profile`)."""
        from lakeloom.engines import spark_profile

        return spark_profile.profile(self, data, spec)

    # -- conversion --------------------------------------------------------------------
    def from_input(self, data: Any) -> DataFrame:
        """A Spark DataFrame from pandas, polars, Arrow or Spark input (Spark: unchanged).

        Arrow types Delta cannot store are mapped first, as the local engine does
        (unsigned to signed, dictionaries decoded, timestamps as microseconds in UTC).
        """
        if is_dataframe(data):
            return data
        arrow = to_arrow_input(data)
        if isinstance(arrow, pa.RecordBatchReader):
            arrow = arrow.read_all()
        table = conform(arrow, None, "input")
        assert isinstance(table, pa.Table)
        spark = self.spark
        df = spark.createDataFrame(table, schema=spark_schema(table.schema))
        # Spark makes one partition per Arrow batch (10,000 rows): fold them into a few
        # partitions so writes make files of a sensible size (no shuffle).
        return df.coalesce(max(_parallelism(spark), -(-table.num_rows // _ROWS_PER_PARTITION)))

    def to_arrow(self, frame: Any) -> pa.Table:
        """Collect a frame into one Arrow table, typed as the local engine types it.

        Spark's large strings become strings and every field is nullable (Spark marks
        aggregates and literals non-null; Arrow data from Delta tables never is).
        """
        if not is_dataframe(frame):
            data = to_arrow_input(frame)
            return data.read_all() if isinstance(data, pa.RecordBatchReader) else data
        return to_local_arrow(frame)

    def __repr__(self) -> str:
        where = self.settings.remote or self.settings.master
        return f"SparkEngine({where!r})"
