"""The embedded online store: one SQLite file (``<workspace>/online.db``), WAL mode.

Each generation of a published table is one SQL table ``"<name>@<generation>"`` with a row
per key: typed key columns (the primary key, ``WITHOUT ROWID``), typed feature columns
(:mod:`lakeloom.features.online.codec`), the event time in µs and a flag telling whether the
row holds a float NaN (SQLite would store NaN as NULL: it is kept as the text ``'NaN'``, and
only flagged rows pay for converting it back). ``_lakeloom_online`` holds each table's spec,
current generation, last publish and an *epoch* that every commit increments.

Lookups run one prepared statement per (table, feature set): ``... WHERE key = ?`` for one
key, ``... WHERE key IN (?, ...)`` for many. Each thread reads through its own connection and
notices other connections' commits with ``PRAGMA data_version`` (a counter in memory, no I/O):
only then does it re-read the epochs, and re-plan a table whose epoch moved.

A SQLite file is written by this process only: Spark executors on a cluster cannot reach it,
so Spark publishes to SQLite stream Arrow chunks to the driver (``toLocalIterator``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakeloom.errors import ConcurrentWriteConflict, InvalidArgument
from lakeloom.features.online.base import (
    OnlineStoreError,
    OnlineTableInfo,
    OnlineTableNotFound,
    OnlineTableSpec,
    PartitionWriter,
    PublishState,
    UnknownFeature,
    WriteCounts,
)
from lakeloom.features.online.codec import (
    column_values,
    drop_null_keys,
    event_micros,
    feature_key,
    key_list,
    key_normaliser,
    read_converter,
    table_name,
)

__all__ = ["SQLiteOnlineStore"]

_META = "_lakeloom_online"
_TS = "_lakeloom_ts"
_NAN = "_lakeloom_nan"
#: Keys per ``IN (...)`` statement (SQLite allows 32,766 parameters).
_KEYS_PER_QUERY = 500

_SQL_TYPES = {
    "bool": "INTEGER",
    "int": "INTEGER",
    "float": "REAL",
    "str": "TEXT",
    "bytes": "BLOB",
    "decimal": "TEXT",
    "date": "INTEGER",
    "timestamp": "INTEGER",
    "timestamp_tz": "INTEGER",
    "json": "TEXT",
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(spec: OnlineTableSpec) -> str:
    return _q(f"{spec.name}@{spec.generation}")


def _now_micros() -> int:
    return time.time_ns() // 1000


class _Plan:
    """A prepared lookup of one feature set of one table (per reading thread)."""

    __slots__ = (
        "columns",
        "conv",
        "epoch",
        "floats",
        "key_count",
        "many",
        "names",
        "norm",
        "single",
        "spec",
        "sql_one",
        "ttl",
    )

    def __init__(self, spec: OnlineTableSpec, epoch: int, features: Sequence[str]) -> None:
        self.spec = spec
        self.epoch = epoch
        kinds = {c.name: c.kind for c in (*spec.keys, *spec.features)}
        self.names = [*spec.key_names, *features]
        self.key_count = len(spec.keys)
        self.single = self.key_count == 1
        self.norm = key_normaliser(spec)
        self.ttl = None if spec.ttl_seconds is None else int(spec.ttl_seconds * 1_000_000)
        self.conv: list[tuple[int, Callable[[Any], Any]]] = [
            (i, f)
            for i, n in enumerate(self.names)
            if kinds[n] != "float" and (f := read_converter(kinds[n], "sqlite"))
        ]
        self.floats = [i for i, n in enumerate(self.names) if kinds[n] == "float"]
        self.columns = ", ".join(f"t.{_q(n)}" for n in [*self.names, _TS, _NAN])
        where = " AND ".join(f"t.{_q(k)} = ?" for k in spec.key_names)
        self.sql_one = f"SELECT {self.columns} FROM {_table(spec)} AS t WHERE {where}"
        self.many: dict[int, str] = {}

    def sql_many(self, n: int) -> str:
        """The statement fetching ``n`` keys (cached: the text is the statement cache key)."""
        sql = self.many.get(n)
        if sql is None:
            table = _table(self.spec)
            if self.single:
                marks = ", ".join("?" * n)
                key = _q(self.names[0])
                sql = f"SELECT {self.columns} FROM {table} AS t WHERE t.{key} IN ({marks})"
            else:
                # Row values IN (VALUES ...) would scan the table: join the keys instead, which
                # searches the primary key once per key.
                row = "(" + ", ".join("?" * self.key_count) + ")"
                on = " AND ".join(
                    f"t.{_q(k)} = k.column{i + 1}" for i, k in enumerate(self.spec.key_names)
                )
                sql = (
                    f"SELECT {self.columns} FROM (VALUES {', '.join([row] * n)}) AS k "
                    f"CROSS JOIN {table} AS t ON {on}"
                )
            self.many[n] = sql
        return sql

    def row(self, row: tuple[Any, ...] | None, now: int) -> dict[str, Any] | None:
        if row is None:
            return None
        ttl = self.ttl
        if ttl is not None and row[-2] < now - ttl:
            return None
        if self.conv or (row[-1] and self.floats):
            values = list(row)
            for i, f in self.conv:
                v = values[i]
                if v is not None:
                    values[i] = f(v)
            if row[-1]:
                for i in self.floats:
                    v = values[i]
                    if type(v) is str:
                        values[i] = float(v)
            return dict(zip(self.names, values))  # noqa: B905 - drops the two trailing columns
        return dict(zip(self.names, row))  # noqa: B905 - drops the two trailing columns

    def fetch(self, con: sqlite3.Connection, keys: Sequence[Any]) -> list[dict[str, Any] | None]:
        now = _now_micros()
        norm = self.norm
        if len(keys) == 1:
            k = norm(keys[0])
            row = con.execute(self.sql_one, (k,) if self.single else k).fetchone()
            return [self.row(row, now)]
        wanted = [norm(k) for k in keys]
        unique = list(dict.fromkeys(wanted))
        found: dict[Any, tuple[Any, ...]] = {}
        nk = self.key_count
        for start in range(0, len(unique), _KEYS_PER_QUERY):
            part = unique[start : start + _KEYS_PER_QUERY]
            if self.single:
                params: Sequence[Any] = part
                rows = con.execute(self.sql_many(len(part)), params).fetchall()
                found.update((r[0], r) for r in rows)
            else:
                params = [v for k in part for v in k]
                rows = con.execute(self.sql_many(len(part)), params).fetchall()
                found.update((r[:nk], r) for r in rows)
        get, convert = found.get, self.row
        return [convert(get(k), now) for k in wanted]


@dataclass
class _Reader:
    """One thread's connection and prepared lookups."""

    con: sqlite3.Connection
    data_version: int = -1
    epochs: dict[str, int] = field(default_factory=dict)
    plans: dict[tuple[str, tuple[str, ...] | None], _Plan] = field(default_factory=dict)


class SQLiteOnlineStore:
    """Online tables in one SQLite file. Thread-safe: each thread reads on its own connection.

    >>> store = SQLiteOnlineStore("/tmp/ws/online.db")  # doctest: +SKIP
    >>> store.get("features.customer", [42])  # doctest: +SKIP
    [{'customer_id': 42, 'age': 31, ...}]
    """

    kind = "sqlite"

    def __init__(self, path: str, *, timeout: float = 30.0) -> None:
        self.path = path
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the list of connections
        self._write_lock = threading.Lock()  # one write transaction at a time
        self._connections: list[sqlite3.Connection] = []
        self._writer: sqlite3.Connection | None = None
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
            with self._write() as con:
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {_META} (name TEXT PRIMARY KEY, "
                    "generation INTEGER NOT NULL, epoch INTEGER NOT NULL, "
                    "last_generation INTEGER NOT NULL, spec TEXT, state TEXT)"
                )
        except (OSError, sqlite3.Error) as exc:
            raise OnlineStoreError(
                f"cannot open the SQLite online store {path}: {exc}; check the folder exists "
                "and is writable, or set [online_store] url"
            ) from None

    # -- connections ---------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(
            self.path,
            timeout=self._timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=512,
        )
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._connections.append(con)
        return con

    def _reader(self) -> _Reader:
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = _Reader(self._connect())
            self._local.reader = reader
        return reader

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE ... COMMIT`` (rolled back on error)."""
        with self._write_lock:
            if self._writer is None:
                self._writer = self._connect()
            con = self._writer
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    # -- reading -------------------------------------------------------------------------
    def get(
        self, name: str, keys: Iterable[Any], features: Sequence[str] | None = None
    ) -> list[dict[str, Any] | None]:
        """See :meth:`OnlineStore.get`."""
        reader = getattr(self._local, "reader", None) or self._reader()
        con = reader.con
        version = con.execute("PRAGMA data_version").fetchone()[0]
        if version != reader.data_version:
            self._refresh(reader, version)
        fkey = None if features is None else feature_key(features)
        plan = reader.plans.get((name, fkey))
        if plan is None:
            plan = self._plan(reader, name, fkey)
        key_values = keys if type(keys) is list else key_list(keys)
        if not key_values:
            return []
        try:
            return plan.fetch(con, key_values)
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise OnlineStoreError(f"online lookup in {self.path} failed: {exc}") from None
        # A snapshot publish replaced the table between the epoch check and the query.
        self._refresh(reader, con.execute("PRAGMA data_version").fetchone()[0])
        return self._plan(reader, name, fkey).fetch(con, key_values)

    def _refresh(self, reader: _Reader, version: int) -> None:
        epochs = dict(reader.con.execute(f"SELECT name, epoch FROM {_META}").fetchall())
        reader.plans = {k: p for k, p in reader.plans.items() if epochs.get(p.spec.name) == p.epoch}
        reader.epochs = epochs
        reader.data_version = version

    def _plan(self, reader: _Reader, name: str, fkey: tuple[str, ...] | None) -> _Plan:
        row = reader.con.execute(
            f"SELECT spec, epoch FROM {_META} WHERE name = ?", (table_name(name),)
        ).fetchone()
        if row is None or row[0] is None:
            raise OnlineTableNotFound(name, self.list_tables())
        spec = OnlineTableSpec.from_json(row[0])
        known = spec.feature_names
        if fkey is None:
            features: Sequence[str] = known
        else:
            for f in fkey:
                if f not in known:
                    raise UnknownFeature(name, str(f), known)
            features = fkey
        plan = _Plan(spec, int(row[1]), features)
        reader.plans[(name, fkey)] = plan
        return plan

    def describe(self, name: str) -> OnlineTableInfo | None:
        """See :meth:`OnlineStore.describe`."""
        row = (
            self._reader()
            .con.execute(f"SELECT spec, state FROM {_META} WHERE name = ?", (table_name(name),))
            .fetchone()
        )
        if row is None or row[0] is None:
            return None
        return OnlineTableInfo(OnlineTableSpec.from_json(row[0]), PublishState.from_json(row[1]))

    def list_tables(self) -> list[str]:
        """See :meth:`OnlineStore.list_tables`."""
        rows = (
            self._reader()
            .con.execute(f"SELECT name FROM {_META} WHERE spec IS NOT NULL ORDER BY name")
            .fetchall()
        )
        return [r[0] for r in rows]

    # -- writing -------------------------------------------------------------------------
    def begin(self, spec: OnlineTableSpec, *, fresh: bool) -> OnlineTableSpec:
        """See :meth:`OnlineStore.begin`."""
        with self._write() as con:
            row = con.execute(
                f"SELECT spec, last_generation FROM {_META} WHERE name = ?", (spec.name,)
            ).fetchone()
            if fresh:
                generation = (int(row[1]) if row else 0) + 1
                if row is None:
                    con.execute(
                        f"INSERT INTO {_META} (name, generation, epoch, last_generation) "
                        "VALUES (?, 0, 0, ?)",
                        (spec.name, generation),
                    )
                else:
                    con.execute(
                        f"UPDATE {_META} SET last_generation = ? WHERE name = ?",
                        (generation, spec.name),
                    )
                out = spec.with_generation(generation)
                self._create(con, out)
                return out
            current = OnlineTableSpec.from_json(row[0]) if row and row[0] else None
            if current is None or not current.same_layout(spec):
                raise InvalidArgument(
                    f"online table {spec.name!r} is not published with this layout; "
                    "publish a snapshot first"
                )
            return spec.with_generation(current.generation)

    @staticmethod
    def _create(con: sqlite3.Connection, spec: OnlineTableSpec) -> None:
        cols = [f"{_q(c.name)} {_SQL_TYPES[c.kind]} NOT NULL" for c in spec.keys]
        cols += [f"{_q(c.name)} {_SQL_TYPES[c.kind]}" for c in spec.features]
        cols += [f"{_TS} INTEGER NOT NULL", f"{_NAN} INTEGER NOT NULL"]
        keys = ", ".join(_q(k) for k in spec.key_names)
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {_table(spec)} ({', '.join(cols)}, "
            f"PRIMARY KEY ({keys})) WITHOUT ROWID"
        )

    def write(self, spec: OnlineTableSpec, batch: pa.RecordBatch | pa.Table) -> WriteCounts:
        """See :meth:`OnlineStore.write`."""
        received = batch.num_rows
        batch = drop_null_keys(batch, spec)
        n = batch.num_rows
        if n == 0:
            return WriteCounts(received, 0)
        ts = event_micros(batch, spec, _now_micros())
        columns = [column_values(batch.column(c.name), c.kind) for c in spec.keys]
        nan = [0] * n
        for c in spec.features:
            col = batch.column(c.name)
            columns.append(column_values(col, c.kind, nan_text=True))
            if c.kind == "float" and pa.types.is_floating(col.type) and col.null_count < n:
                flags = pc.is_nan(col)
                if pc.any(flags).as_py():
                    for r in pc.indices_nonzero(flags.fill_null(False)).to_pylist():
                        nan[r] = 1
        columns += [ts, nan]
        names = [*spec.key_names, *spec.feature_names, _TS, _NAN]
        cols = ", ".join(_q(x) for x in names)
        marks = ", ".join("?" * len(names))
        updates = ", ".join(f"{_q(x)} = excluded.{_q(x)}" for x in names[len(spec.keys) :])
        keys = ", ".join(_q(k) for k in spec.key_names)
        sql = (
            f"INSERT INTO {_table(spec)} ({cols}) VALUES ({marks}) ON CONFLICT ({keys}) "
            f"DO UPDATE SET {updates} WHERE excluded.{_TS} >= {_TS}"
        )
        try:
            with self._write() as con:
                before = con.total_changes
                con.executemany(sql, zip(*columns, strict=True))
                applied = con.total_changes - before
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise InvalidArgument(
                    f"online table {spec.name!r} generation {spec.generation} no longer "
                    "exists (another publish replaced it); publish again"
                ) from None
            raise OnlineStoreError(f"writing to {self.path} failed: {exc}") from None
        return WriteCounts(received, applied)

    def commit(self, spec: OnlineTableSpec, state: PublishState) -> None:
        """See :meth:`OnlineStore.commit`."""
        with self._write() as con:
            row = con.execute(
                f"SELECT generation, epoch, last_generation FROM {_META} WHERE name = ?",
                (spec.name,),
            ).fetchone()
            if row is None:
                raise ConcurrentWriteConflict(
                    f"online table {spec.name!r} was dropped during the publish; publish again"
                )
            if int(row[0]) > spec.generation:
                raise ConcurrentWriteConflict(
                    f"another publish of online table {spec.name!r} committed a newer snapshot "
                    "meanwhile; nothing was changed, publish again if needed"
                )
            con.execute(
                f"UPDATE {_META} SET generation = ?, epoch = ?, spec = ?, state = ? WHERE name = ?",
                (spec.generation, int(row[1]) + 1, spec.to_json(), state.to_json(), spec.name),
            )
            for table, generation in self._generations(con, spec.name):
                if generation < spec.generation:
                    con.execute(f"DROP TABLE IF EXISTS {_q(table)}")
            if spec.ttl_seconds is not None:
                horizon = _now_micros() - int(spec.ttl_seconds * 1_000_000)
                con.execute(f"DELETE FROM {_table(spec)} WHERE {_TS} < ?", (horizon,))

    @staticmethod
    def _generations(con: sqlite3.Connection, name: str) -> list[tuple[str, int]]:
        rows = con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",
            (len(name) + 1, name + "@"),
        ).fetchall()
        out = []
        for (table,) in rows:
            suffix = table[len(name) + 1 :]
            if suffix.isdigit():
                out.append((table, int(suffix)))
        return out

    def abort(self, spec: OnlineTableSpec) -> None:
        """See :meth:`OnlineStore.abort`."""
        with self._write() as con:
            con.execute(f"DROP TABLE IF EXISTS {_table(spec)}")
            row = con.execute(f"SELECT spec FROM {_META} WHERE name = ?", (spec.name,)).fetchone()
            if row is not None and row[0] is None:
                con.execute(f"DELETE FROM {_META} WHERE name = ?", (spec.name,))

    def drop(self, name: str) -> None:
        """See :meth:`OnlineStore.drop`."""
        name = table_name(name)
        with self._write() as con:
            row = con.execute(f"SELECT spec FROM {_META} WHERE name = ?", (name,)).fetchone()
            if row is None or row[0] is None:
                raise OnlineTableNotFound(name, self.list_tables())
            for table, _ in self._generations(con, name):
                con.execute(f"DROP TABLE IF EXISTS {_q(table)}")
            con.execute(f"DELETE FROM {_META} WHERE name = ?", (name,))

    def partition_writer(self) -> PartitionWriter | None:
        """None: only this process writes a SQLite file."""
        return None

    def close(self) -> None:
        """Close every connection (a later call reopens them)."""
        with self._write_lock, self._lock:
            connections, self._connections = self._connections, []
            self._writer = None
            self._local = threading.local()
        for con in connections:
            con.close()

    def __repr__(self) -> str:
        return f"SQLiteOnlineStore({self.path!r})"
