"""Feature tables: Delta tables with primary keys, an optional timestamp key, and checked writes.

**Where the metadata lives.** A feature table's keys, timestamp key, description and tags are
Delta table properties (``lakeloom.feature.*``) in the table's own log, not rows of a separate
catalogue table. So the table describes itself wherever it is copied or read from (Spark's
``SHOW TBLPROPERTIES`` shows them); there is no second source of truth to drift when a table
is dropped, restored or moved; and time travel gives the keys a version was written with.
Setting them is a metadata-only commit (a version without data changes).

**Checked writes.** Every write through the feature store keeps one row per (primary keys,
timestamp key), no nulls in those columns, and a timestamp key that is a timestamp or a date.
``merge`` upserts on the keys plus the timestamp key (duplicates in the data are refused
before anything is written); ``overwrite`` and ``create_table`` check the written version and
put the previous content back (or drop the new table) when it breaks the rule. The versions
known to hold unique (keys, time) pairs are recorded beside the table
(``_lakeloom/feature_checks.json``) so that point-in-time joins on them can skip their
tie-break pass; a version written around the feature store (``ws.tables.write``) is simply
not recorded, and joins on it break ties the slow, always correct way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
from deltalake import DeltaTable

from lakeloom.engines.base import Engine, Frame, TableRef
from lakeloom.engines.delta_log import arrow_schema, open_delta
from lakeloom.engines.pit_plan import is_time
from lakeloom.errors import InvalidArgument, LakeloomError, SchemaMismatch, TableNotFound
from lakeloom.lakehouse.storage import Storage
from lakeloom.lakehouse.tables import Tables

__all__ = [
    "FeatureTable",
    "FeatureTableNotFound",
    "FeatureTables",
    "WriteMode",
]

WriteMode = Literal["merge", "overwrite"]
PROPERTY_PREFIX = "lakeloom.feature."
_KEYS = PROPERTY_PREFIX + "primary_keys"
_TS = PROPERTY_PREFIX + "timestamp_key"
_DESCRIPTION = PROPERTY_PREFIX + "description"
_TAGS = PROPERTY_PREFIX + "tags"
_CHECKS_FILE = ("_lakeloom", "feature_checks.json")
#: Key and timestamp columns are plain identifiers: they appear unquoted in checks' SQL,
#: which both engines' dialects then read the same way.
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class FeatureTableNotFound(TableNotFound):
    """A feature table that does not exist (or a plain table that is no feature table)."""

    def __init__(self, name: str, known: Sequence[str] = (), *, plain: bool = False) -> None:
        super().__init__(name, known)
        if plain:
            self.args = (
                f"table {name!r} is not a feature table; register it with "
                f"fs.create_table({name!r}, primary_keys=[...]) (no df)",
            )
        else:
            hint = ", ".join(self.close_matches)
            self.args = (
                f"feature table {name!r} does not exist"
                + (f"; did you mean {hint}?" if hint else "; `lakeloom features list` lists them"),
            )


@dataclass(frozen=True)
class FeatureTable:
    """A feature table's definition (as stored in its Delta properties)."""

    name: str
    primary_keys: tuple[str, ...]
    timestamp_key: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The primary keys plus the timestamp key: unique together."""
        return (*self.primary_keys, *([self.timestamp_key] if self.timestamp_key else []))

    def features(self, schema: pa.Schema) -> list[str]:
        """The columns of ``schema`` that are features (neither keys nor the timestamp key)."""
        return [c for c in schema.names if c not in self.key_columns]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name,
            "primary_keys": list(self.primary_keys),
            "timestamp_key": self.timestamp_key,
            "description": self.description,
            "tags": dict(self.tags),
        }


def _properties(
    keys: Sequence[str], ts: str | None, description: str, tags: Mapping[str, str]
) -> dict[str, str]:
    return {
        _KEYS: json.dumps(list(keys)),
        _TS: ts or "",
        _DESCRIPTION: description,
        _TAGS: json.dumps(dict(tags), sort_keys=True),
    }


def _from_properties(name: str, conf: Mapping[str, str | None]) -> FeatureTable | None:
    raw = conf.get(_KEYS)
    if not raw:
        return None
    try:
        keys = tuple(str(k) for k in json.loads(raw))
        tags = {str(k): str(v) for k, v in json.loads(conf.get(_TAGS) or "{}").items()}
    except (ValueError, AttributeError):
        raise LakeloomError(
            f"the feature properties of table {name} are damaged ({_KEYS}={raw!r}); "
            "set them again with fs.create_table on the existing table"
        ) from None
    return FeatureTable(
        name=name,
        primary_keys=keys,
        timestamp_key=conf.get(_TS) or None,
        description=conf.get(_DESCRIPTION) or "",
        tags=tags,
    )


def _check_names(keys: Sequence[str], ts: str | None) -> list[str]:
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise InvalidArgument("a feature table needs at least one primary key column")
    for name in [*keys, *([ts] if ts else [])]:
        if not isinstance(name, str) or not _IDENT.match(name):
            raise InvalidArgument(
                f"key column {name!r} must be a plain name (letters, digits, underscores)"
            )
    if len(set(keys)) != len(keys) or (ts is not None and ts in keys):
        raise InvalidArgument(f"key columns repeat: {[*keys, ts]}")
    return keys


class FeatureTables:
    """Definitions and checked writes of the workspace's feature tables."""

    def __init__(self, tables: Tables, engine: Engine) -> None:
        self._tables = tables
        self._engine = engine

    # -- reading definitions -----------------------------------------------------------
    def _definition(self, ref: TableRef, version: int | None = None) -> FeatureTable | None:
        dt = open_delta(ref, version=version)
        return _from_properties(ref.name, dt.metadata().configuration)

    def get(self, name: str, *, version: int | None = None) -> FeatureTable:
        """The definition of feature table ``name``; raises :class:`FeatureTableNotFound`."""
        ref = self._existing(name)
        found = self._definition(ref, version)
        if found is None:
            raise FeatureTableNotFound(ref.name, plain=True)
        return found

    def pinned(
        self, name: str, *, version: int | None = None
    ) -> tuple[FeatureTable, int, pa.Schema]:
        """The (latest) definition of ``name``, ``version`` (default: the latest) and its schema.

        Reads the table's log once when ``version`` is the latest.
        """
        ref = self._existing(name)
        dt = open_delta(ref)
        found = _from_properties(ref.name, dt.metadata().configuration)
        if found is None:
            raise FeatureTableNotFound(ref.name, plain=True)
        if version is None or version == dt.version():
            return found, dt.version(), arrow_schema(dt)
        return found, version, arrow_schema(open_delta(ref, version=version))

    def _existing(self, name: str) -> TableRef:
        ref = self._tables.ref(name)
        if not self._tables.exists(ref.name):
            raise FeatureTableNotFound(ref.name, self.names())
        return ref

    def names(self) -> list[str]:
        """Every feature table's name, sorted."""
        return [t.name for t in self.list()]

    def list(self) -> list[FeatureTable]:
        """Every feature table's definition, sorted by name."""
        out = []
        for name in self._tables.table_names():
            if name.startswith("lakeloom."):
                continue
            try:
                found = self._definition(self._tables.ref(name))
            except LakeloomError:
                continue
            if found is not None:
                out.append(found)
        return out

    def ref(self, name: str) -> TableRef:
        """Where existing table ``name`` lives."""
        return self._tables.resolve(name)

    def version(self, name: str) -> int:
        """The latest version of table ``name``."""
        return self._tables.version(name)

    def schema(self, name: str, version: int | None = None) -> pa.Schema:
        """The Arrow schema of ``name`` at ``version`` (default: the latest)."""
        return arrow_schema(open_delta(self._tables.resolve(name), version=version))

    # -- the unique-rows record --------------------------------------------------------
    def _checks(self, ref: TableRef) -> dict[str, Any]:
        text = Storage(ref.uri, ref.storage_options).read_text(*_CHECKS_FILE)
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def verified_unique(self, name: str, version: int) -> bool:
        """Whether ``version`` of ``name`` is known to hold one row per (keys, time)."""
        ref = self._tables.resolve(name)
        return version in set(self._checks(ref).get("unique_versions", []))

    def _record_unique(self, ref: TableRef, version: int) -> None:
        data = self._checks(ref)
        versions = sorted({*data.get("unique_versions", []), version})
        data["unique_versions"] = versions
        Storage(ref.uri, ref.storage_options).write_text(json.dumps(data), *_CHECKS_FILE)

    # -- checks ------------------------------------------------------------------------
    def _violations(self, ref: TableRef, table: FeatureTable) -> str | None:
        """Why the latest version of ``ref`` breaks the feature table rules, or None."""
        schema = arrow_schema(open_delta(ref))
        missing = [c for c in table.key_columns if c not in schema.names]
        if missing:
            return (
                f"it has no column(s) {', '.join(map(repr, missing))} (its columns: "
                f"{', '.join(schema.names)})"
            )
        ts = table.timestamp_key
        if ts is not None and not is_time(schema.field(ts).type):
            return (
                f"its timestamp key {ts!r} is {schema.field(ts).type}; it must be a timestamp "
                "or a date (cast it, e.g. to_timestamp(...) or cast(... as timestamp))"
            )
        cols = ", ".join(table.key_columns)
        nulls = " or ".join(f"{c} is null" for c in table.key_columns)
        query = (
            f"select (select count(*) from (select {cols} from {ref.name} group by {cols} "
            f"having count(*) > 1) d) as repeated, "
            f"(select count(*) from {ref.name} where {nulls}) as nulls"
        )
        row = self._engine.to_arrow(self._tables.sql(query)).to_pylist()[0]
        if row["repeated"]:
            return (
                f"{row['repeated']} ({cols}) value(s) occur in more than one row; a feature "
                "table holds one row per primary key (and timestamp): deduplicate first"
            )
        if row["nulls"]:
            return f"{row['nulls']} row(s) have a null in a key column ({cols})"
        return None

    # -- creating ----------------------------------------------------------------------
    def create(
        self,
        name: str,
        primary_keys: str | Sequence[str],
        *,
        timestamp_key: str | None = None,
        df: Any = None,
        schema: pa.Schema | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        partition_columns: Sequence[str] | None = None,
    ) -> FeatureTable:
        """Create feature table ``name`` (from ``df``, or empty with ``schema``).

        Without ``df`` or ``schema``, an existing plain table becomes a feature table once
        its rows pass the checks. Nothing is left behind when a check fails.
        """
        keys = _check_names(primary_keys, timestamp_key)
        ref = self._tables.ref(name)
        definition = FeatureTable(
            ref.name, tuple(keys), timestamp_key, description, dict(tags or {})
        )
        props = _properties(keys, timestamp_key, description, definition.tags)
        exists = self._tables.exists(ref.name)
        if exists and self._definition(ref) is not None:
            raise InvalidArgument(
                f"feature table {ref.name} already exists; write to it with fs.write_table or "
                "drop it first"
            )
        if exists and (df is not None or schema is not None):
            raise InvalidArgument(
                f"table {ref.name} already exists; call fs.create_table({ref.name!r}, "
                "primary_keys=...) without df to make it a feature table"
            )
        if not exists and df is None and schema is None:
            raise InvalidArgument(
                f"table {ref.name} does not exist: pass df (the rows) or schema to create it"
            )
        if schema is not None and df is None:
            self._check_schema(ref.name, schema, definition)
            dt = DeltaTable.create(
                ref.uri,
                schema,
                partition_by=list(partition_columns) if partition_columns else None,
                configuration=props,
                storage_options=dict(ref.storage_options) or None,
                raise_if_key_not_exists=False,
            )
            self._record_unique(ref, dt.version())
            return definition
        if not exists:
            self._engine.write(
                ref, self._engine.from_input(df), mode="append", partition_by=partition_columns
            )
        problem = self._violations(ref, definition)
        if problem is not None:
            if not exists:
                self._tables.drop(ref.name)
            raise SchemaMismatch(f"cannot make {ref.name} a feature table: {problem}")
        version = self._set_properties(ref, props)
        self._record_unique(ref, version)
        return definition

    @staticmethod
    def _check_schema(name: str, schema: pa.Schema, table: FeatureTable) -> None:
        missing = [c for c in table.key_columns if c not in schema.names]
        if missing:
            raise SchemaMismatch(
                f"the schema of {name} has no column(s) {', '.join(map(repr, missing))}"
            )
        ts = table.timestamp_key
        if ts is not None and not is_time(schema.field(ts).type):
            raise SchemaMismatch(
                f"the timestamp key {ts!r} of {name} is {schema.field(ts).type}; it must be a "
                "timestamp or a date"
            )

    def _set_properties(self, ref: TableRef, props: Mapping[str, str]) -> int:
        dt = DeltaTable(ref.uri, storage_options=dict(ref.storage_options) or None)
        dt.alter.set_table_properties(dict(props), raise_if_not_exists=False)
        return DeltaTable(ref.uri, storage_options=dict(ref.storage_options) or None).version()

    def update(
        self, name: str, *, description: str | None = None, tags: Mapping[str, str] | None = None
    ) -> FeatureTable:
        """Change the description or tags (a metadata-only version)."""
        table = self.get(name)
        ref = self._tables.resolve(table.name)
        unique = self.verified_unique(table.name, self._tables.version(table.name))
        new = FeatureTable(
            table.name,
            table.primary_keys,
            table.timestamp_key,
            table.description if description is None else description,
            dict(table.tags if tags is None else tags),
        )
        version = self._set_properties(
            ref, _properties(new.primary_keys, new.timestamp_key, new.description, new.tags)
        )
        if unique:
            self._record_unique(ref, version)
        return new

    # -- writing -----------------------------------------------------------------------
    def write(self, name: str, df: Any, *, mode: WriteMode = "merge") -> int:
        """Merge (upsert on keys and time) or overwrite; returns the new version."""
        if mode not in ("merge", "overwrite"):
            raise InvalidArgument(f"mode must be 'merge' or 'overwrite', got {mode!r}")
        table = self.get(name)
        ref = self._tables.resolve(table.name)
        before = self._tables.version(ref.name)
        data: Frame = self._engine.from_input(df)
        if mode == "merge":
            was_unique = self.verified_unique(ref.name, before)
            try:
                version = self._engine.merge(ref, data, keys=list(table.key_columns))
            except InvalidArgument as exc:
                raise InvalidArgument(f"cannot write feature table {ref.name}: {exc}") from None
            if version != before and (was_unique or self._violations(ref, table) is None):
                self._record_unique(ref, version)
            return version
        version = self._engine.write(ref, data, mode="overwrite")
        problem = self._violations(ref, table)
        if problem is not None:
            self._tables.restore(ref.name, before)
            raise SchemaMismatch(
                f"cannot overwrite feature table {ref.name}: {problem}; its content is back "
                f"to version {before} (as a new version)"
            )
        self._record_unique(ref, version)
        return version

    def drop(self, name: str) -> None:
        """Delete feature table ``name`` and all its versions."""
        table = self.get(name)
        self._tables.drop(table.name)

    def freshness(self, name: str) -> datetime | None:
        """The newest timestamp key value (None without a timestamp key or rows)."""
        table = self.get(name)
        if table.timestamp_key is None:
            return None
        got = self._engine.to_arrow(
            self._tables.sql(f"select max({table.timestamp_key}) as newest from {table.name}")
        ).to_pylist()[0]["newest"]
        if isinstance(got, datetime):
            return got if got.tzinfo else got.replace(tzinfo=UTC)
        if got is None:
            return None
        return datetime(got.year, got.month, got.day, tzinfo=UTC)
