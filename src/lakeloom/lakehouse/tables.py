"""Lakehouse tables (``ws.tables``): Delta tables named ``schema.table`` under ``Tables/``.

Data-sized work (read, write, merge, SQL) goes through the workspace's engine; the Delta log
operations (history, restore, tags, vacuum, optimize) go through delta-rs, the same on every
engine.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import DeltaTable

from lakeloom.durations import parse_duration
from lakeloom.engines.base import Engine, Frame, SchemaMode, TableRef, WriteMode
from lakeloom.engines.delta_log import arrow_filesystem, arrow_schema, open_delta, table_exists
from lakeloom.errors import InvalidArgument, TableNotFound
from lakeloom.lakehouse.names import parse_table_name
from lakeloom.lakehouse.storage import Storage

__all__ = ["TableInfo", "Tables"]

TABLES_DIR = "Tables"
_TAGS_FILE = ("_lakeloom", "tags.json")


@dataclass(frozen=True)
class TableInfo:
    """What :meth:`Tables.describe` tells about a table."""

    name: str
    location: str
    version: int
    schema: pa.Schema
    rows: int
    files: int
    size_bytes: int
    partition_columns: list[str]
    last_change: datetime | None
    last_operation: str | None
    tags: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name,
            "location": self.location,
            "version": self.version,
            "schema": [{"name": f.name, "type": str(f.type)} for f in self.schema],
            "rows": self.rows,
            "files": self.files,
            "size_bytes": self.size_bytes,
            "partition_columns": self.partition_columns,
            "last_change": self.last_change.isoformat() if self.last_change else None,
            "last_operation": self.last_operation,
            "tags": self.tags,
        }


class Tables:
    """The workspace's Delta tables. Also the engines' :class:`~lakeloom.engines.Catalog`."""

    def __init__(self, storage: Storage, engine: Engine) -> None:
        self._storage = storage
        self._engine = engine

    # -- names -------------------------------------------------------------------------
    def ref(self, name: str, *, system: bool = False) -> TableRef:
        """The location of table ``name`` (which need not exist yet)."""
        schema, table = parse_table_name(name, allow_reserved=system)
        return TableRef(
            name=f"{schema}.{table}",
            uri=self._storage.uri(TABLES_DIR, schema, table),
            storage_options=self._storage.delta_options(),
        )

    def resolve(self, name: str) -> TableRef:
        """The existing table ``name`` (lakeloom's own tables included), or TableNotFound."""
        ref = self.ref(name, system=True)
        if not table_exists(ref):
            raise TableNotFound(ref.name, self.table_names())
        return ref

    def exists(self, name: str) -> bool:
        """Whether table ``name`` exists."""
        return table_exists(self.ref(name, system=True))

    def table_names(self) -> list[str]:
        """Every table's name, sorted (lakeloom's own included)."""
        names = []
        for schema in self._storage.list_dirs(TABLES_DIR):
            for table in self._storage.list_dirs(TABLES_DIR, schema):
                if "_delta_log" in self._storage.list_dirs(TABLES_DIR, schema, table):
                    names.append(f"{schema}.{table}")
        return names

    def list(self, schema: str | None = None) -> list[str]:
        """Table names, optionally of one schema."""
        names = self.table_names()
        if schema is not None:
            names = [n for n in names if n.split(".")[0] == schema.lower()]
        return names

    # -- data --------------------------------------------------------------------------
    def read(
        self,
        name: str,
        *,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
    ) -> Frame:
        """Rows of ``name`` at its latest version, a ``version`` or a ``timestamp``.

        >>> ws.tables.read("raw.customers", version=3, columns=["customer_id"])  # doctest: +SKIP
        """
        ts = _parse_timestamp(timestamp) if timestamp is not None else None
        return self._engine.read(
            self.resolve(name), version=version, timestamp=ts, columns=columns, filter=filter
        )

    def write(
        self,
        name: str,
        data: Any,
        *,
        mode: WriteMode = "append",
        schema_mode: SchemaMode | None = None,
        partition_by: Sequence[str] | None = None,
        system: bool = False,
    ) -> int:
        """Append to or overwrite ``name`` (created when missing); returns the new version.

        ``schema_mode="merge"`` adds new columns; ``"overwrite"`` (with ``mode="overwrite"``)
        replaces the schema. Anything else that does not fit raises ``SchemaMismatch`` and
        leaves the table at its previous version.
        """
        return self._engine.write(
            self.ref(name, system=system),
            self._engine.from_input(data),
            mode=mode,
            schema_mode=schema_mode,
            partition_by=partition_by,
        )

    def merge(
        self, name: str, data: Any, *, keys: Sequence[str] | str, system: bool = False
    ) -> int:
        """Upsert ``data`` into ``name`` on ``keys``; returns the new version."""
        key_list = [keys] if isinstance(keys, str) else list(keys)
        return self._engine.merge(
            self.ref(name, system=system), self._engine.from_input(data), keys=key_list
        )

    def sql(self, query: str) -> Frame:
        """Run SQL over the lakehouse (``schema.table`` names at their latest version)."""
        return self._engine.sql(query, self)

    # -- the Delta log -----------------------------------------------------------------
    def _delta(self, name: str) -> tuple[TableRef, DeltaTable]:
        ref = self.resolve(name)
        return ref, open_delta(ref)

    def version(self, name: str) -> int:
        """The latest version of ``name``."""
        return self._delta(name)[1].version()

    def history(self, name: str, limit: int | None = None) -> builtins.list[dict[str, Any]]:
        """Commits of ``name``, newest first: version, timestamp, operation, parameters."""
        _, dt = self._delta(name)
        out = []
        for entry in dt.history(limit):
            ts = entry.get("timestamp")
            out.append(
                {
                    "version": entry.get("version"),
                    "timestamp": datetime.fromtimestamp(ts / 1000, UTC) if ts else None,
                    "operation": entry.get("operation"),
                    "parameters": entry.get("operationParameters", {}),
                    "metrics": entry.get("operationMetrics", {}),
                }
            )
        return sorted(out, key=lambda e: e["version"] or 0, reverse=True)

    def restore(self, name: str, version: int | str) -> int:
        """Make ``version`` (a number or a tag) the table's content again, as a new version."""
        ref, dt = self._delta(name)
        target = self._version_of(name, version)
        open_delta(ref, version=target)  # validates the version with a clear message
        dt.restore(target)
        return DeltaTable(ref.uri, storage_options=dict(ref.storage_options) or None).version()

    def _version_of(self, name: str, version: int | str) -> int:
        if isinstance(version, str) and not version.isdigit():
            tags = self.tags(name)
            if version not in tags:
                known = ", ".join(sorted(tags)) or "none"
                raise InvalidArgument(f"table {name} has no tag {version!r} (tags: {known})")
            return tags[version]
        return int(version)

    def tags(self, name: str) -> dict[str, int]:
        """Named versions of ``name``."""
        ref = self.resolve(name)
        text = self._tag_storage(ref).read_text(*_TAGS_FILE)
        return {str(k): int(v) for k, v in json.loads(text).items()} if text else {}

    def tag(self, name: str, tag: str, version: int | None = None) -> int:
        """Name a version (default: the latest); vacuum never deletes a tagged version's files."""
        ref, dt = self._delta(name)
        if not tag or not all(c.isalnum() or c in "-_." for c in tag) or tag.isdigit():
            raise InvalidArgument(
                f"tag {tag!r} is not allowed: use letters, digits, '-', '_' or '.' "
                "(not only digits)"
            )
        target = dt.version() if version is None else version
        open_delta(ref, version=target)
        tags = self.tags(name)
        tags[tag] = target
        self._tag_storage(ref).write_text(json.dumps(tags, sort_keys=True), *_TAGS_FILE)
        return target

    def untag(self, name: str, tag: str) -> None:
        """Remove a tag (its version's files become vacuumable)."""
        ref = self.resolve(name)
        tags = self.tags(name)
        if tags.pop(tag, None) is None:
            raise InvalidArgument(f"table {name} has no tag {tag!r}")
        self._tag_storage(ref).write_text(json.dumps(tags, sort_keys=True), *_TAGS_FILE)

    @staticmethod
    def _tag_storage(ref: TableRef) -> Storage:
        return Storage(ref.uri, ref.storage_options)

    def vacuum(
        self, name: str, *, retain: str | timedelta = "7d", dry_run: bool = False
    ) -> builtins.list[str]:
        """Delete files no version newer than ``retain`` needs, except tagged versions' files.

        Files that no version ever committed (left by a writer that died) go too, once older
        than ``retain``. Returns the files deleted (or, with ``dry_run``, that would be).
        The retention is rounded up to whole hours; ``"0h"`` also deletes the files of a
        write still in progress in another process: keep the default unless nothing else
        writes.
        """
        ref, dt = self._delta(name)
        hours = math.ceil(parse_duration(retain).total_seconds() / 3600)
        keep = sorted(set(self.tags(name).values()))

        def run(dry: bool) -> builtins.list[str]:
            return list(
                dt.vacuum(
                    retention_hours=hours,
                    dry_run=dry,
                    enforce_retention_duration=False,
                    keep_versions=keep or None,
                    full=True,
                )
            )

        # delta-rs lists every file a tombstone names, deleted earlier or not: report only
        # the files that are there.
        existing = self._existing_files(ref, run(True))
        if dry_run:
            return existing
        deleted = set(run(False))
        return [f for f in existing if f in deleted]

    @staticmethod
    def _existing_files(ref: TableRef, files: builtins.list[str]) -> builtins.list[str]:
        if not files:
            return []
        fs, root = arrow_filesystem(ref.uri, ref.storage_options)
        paths = []
        for f in files:
            if "://" in f:
                parsed = urlparse(f)
                paths.append(parsed.netloc + parsed.path)
            elif f.startswith("/"):
                paths.append(f)
            else:
                paths.append(f"{root}/{f}")
        infos = fs.get_file_info(paths)
        return [
            f for f, info in zip(files, infos, strict=True) if info.type != pafs.FileType.NotFound
        ]

    def optimize(self, name: str, *, target_size: int | None = None) -> dict[str, Any]:
        """Compact small files into larger ones (a new version with the same rows)."""
        _, dt = self._delta(name)
        metrics: dict[str, Any] = dt.optimize.compact(target_size=target_size)
        return metrics

    def describe(self, name: str) -> TableInfo:
        """Schema, rows, version, size, last change and tags of ``name``."""
        ref, dt = self._delta(name)
        actions = pa.table(dt.get_add_actions(flatten=True))
        rows = (
            int(pa.compute.sum(actions.column("num_records")).as_py() or 0)
            if actions.num_rows and "num_records" in actions.column_names
            else 0
        )
        size = (
            int(pa.compute.sum(actions.column("size_bytes")).as_py() or 0)
            if actions.num_rows
            else 0
        )
        last = self.history(name, limit=1)
        return TableInfo(
            name=ref.name,
            location=ref.uri,
            version=dt.version(),
            schema=arrow_schema(dt),
            rows=rows,
            files=actions.num_rows,
            size_bytes=size,
            partition_columns=list(dt.metadata().partition_columns),
            last_change=last[0]["timestamp"] if last else None,
            last_operation=last[0]["operation"] if last else None,
            tags=self.tags(name),
        )

    def drop(self, name: str, *, system: bool = False) -> None:
        """Delete table ``name`` and all its versions."""
        ref = self.ref(name, system=system)
        if not table_exists(ref):
            raise TableNotFound(ref.name, self.table_names())
        self._storage.delete_dir(TABLES_DIR, ref.schema, ref.table)


def _parse_timestamp(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(
            f"timestamp {value!r} is not ISO 8601 (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
