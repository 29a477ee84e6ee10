"""The alias history: every move of a registry alias, in the Delta table ``lakeloom.alias_history``.

MLflow keeps no history of aliases and has no compare-and-set on them, so lakeloom keeps one
and makes the history the point of serialisation:

* Each row records one event for one ``(model, alias)``: ``seq`` (1, 2, ... per alias),
  ``from_version`` → ``to_version``, who, when, why and the ``kind`` (promote, rollback,
  gate, external, delete).
* :meth:`AliasHistory.append` is a conditional commit: it commits the new row on top of the
  exact Delta version the writer read, with delta-rs commit retries disabled. If anyone
  committed since, the commit fails (:class:`HistoryConflict`) instead of being rebased,
  so of two racing writers exactly one wins; the other re-reads and decides again.

Reads go through delta-rs' query engine (``QueryBuilder``), which is safe at interpreter exit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, QueryBuilder, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from lakeloom.engines.base import TableRef
from lakeloom.engines.delta_log import table_exists

__all__ = [
    "HISTORY_TABLE",
    "KINDS",
    "SCHEMA",
    "AliasEvent",
    "AliasHistory",
    "HistoryConflict",
    "Snapshot",
]

HISTORY_TABLE = "lakeloom.alias_history"
#: What moved an alias. "gate" rows with ``from_version == to_version`` record a refusal.
KINDS = ("promote", "rollback", "gate", "external", "delete")

SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("alias", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("from_version", pa.int64()),
        pa.field("to_version", pa.int64()),
        pa.field("user", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("details", pa.string()),
    ]
)


class HistoryConflict(Exception):
    """Someone committed to the history after we read it; re-read and decide again."""


@dataclass(frozen=True)
class AliasEvent:
    """One row of the alias history."""

    event_id: str
    model: str
    alias: str
    seq: int
    from_version: int | None
    to_version: int | None
    user: str
    reason: str
    kind: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def moved(self) -> bool:
        """Whether the alias changed (a refused gate is recorded but moves nothing)."""
        return self.from_version != self.to_version

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "event_id": self.event_id,
            "model": self.model,
            "alias": self.alias,
            "seq": self.seq,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "user": self.user,
            "reason": self.reason,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "details": dict(self.details),
        }

    @classmethod
    def new(
        cls,
        *,
        model: str,
        alias: str,
        seq: int,
        from_version: int | None,
        to_version: int | None,
        user: str,
        reason: str,
        kind: str,
        details: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        """A new event stamped with a fresh id and the current UTC time."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        return cls(
            event_id=uuid.uuid4().hex,
            model=model,
            alias=alias,
            seq=seq,
            from_version=from_version,
            to_version=to_version,
            user=user,
            reason=reason,
            kind=kind,
            at=datetime.now(UTC),
            details=dict(details or {}),
        )


@dataclass(frozen=True)
class Snapshot:
    """The history as of one Delta version (None: the table does not exist yet)."""

    version: int | None
    events: tuple[AliasEvent, ...]

    def of(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Events of ``model`` (and ``alias``), in order."""
        return [e for e in self.events if e.model == model and (alias is None or e.alias == alias)]

    def last(self, model: str, alias: str) -> AliasEvent | None:
        """The latest event of ``(model, alias)``."""
        events = self.of(model, alias)
        return events[-1] if events else None

    def next_seq(self, model: str, alias: str) -> int:
        """The ``seq`` the next event of ``(model, alias)`` gets."""
        last = self.last(model, alias)
        return last.seq + 1 if last else 1

    def aliases(self, model: str) -> list[str]:
        """Aliases of ``model`` that have history."""
        return sorted({e.alias for e in self.of(model)})


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


class AliasHistory:
    """Reads and conditionally appends the ``lakeloom.alias_history`` Delta table."""

    def __init__(self, ref: TableRef) -> None:
        self._ref = ref

    @property
    def ref(self) -> TableRef:
        """Where the table lives."""
        return self._ref

    def _options(self) -> dict[str, str] | None:
        return dict(self._ref.storage_options) or None

    def snapshot(self) -> Snapshot:
        """Every event at the table's latest version, ordered by (model, alias, seq)."""
        if not table_exists(self._ref):
            return Snapshot(None, ())
        dt = DeltaTable(self._ref.uri, storage_options=self._options())
        reader = QueryBuilder().register("h", dt).execute("select * from h")
        table = pa.RecordBatchReader.from_stream(reader).read_all()
        events = [
            AliasEvent(
                event_id=row["event_id"],
                model=row["model"],
                alias=row["alias"],
                seq=int(row["seq"]),
                from_version=_opt_int(row["from_version"]),
                to_version=_opt_int(row["to_version"]),
                user=row["user"] or "",
                reason=row["reason"] or "",
                kind=row["kind"],
                at=row["at"],
                details=json.loads(row["details"]) if row["details"] else {},
            )
            for row in table.to_pylist()
        ]
        events.sort(key=lambda e: (e.model, e.alias, e.seq))
        return Snapshot(dt.version(), tuple(events))

    def append(self, events: Iterable[AliasEvent], *, read_version: int | None) -> int:
        """Commit ``events`` only if the table is still at ``read_version``; the new version.

        ``read_version=None`` means the table must not exist yet. Raises
        :class:`HistoryConflict` when another writer committed first.
        """
        rows = [
            {
                **e.to_dict(),
                "at": e.at,
                "details": json.dumps(dict(e.details), sort_keys=True, default=str),
            }
            for e in events
        ]
        data = pa.Table.from_pylist(rows, schema=SCHEMA)
        no_retry = CommitProperties(max_commit_retries=0)
        try:
            if read_version is None:
                if table_exists(self._ref):
                    raise HistoryConflict("the alias history was created concurrently")
                write_deltalake(
                    self._ref.uri,
                    data,
                    mode="append",
                    storage_options=self._options(),
                    commit_properties=no_retry,
                )
            else:
                dt = DeltaTable(
                    self._ref.uri, version=read_version, storage_options=self._options()
                )
                write_deltalake(dt, data, mode="append", commit_properties=no_retry)
        except CommitFailedError as exc:
            raise HistoryConflict(str(exc)) from None
        except DeltaError as exc:
            # Creating a table that a concurrent writer just created surfaces as a generic
            # Delta error on some stores; the re-read will see the table.
            if read_version is None and table_exists(self._ref):
                raise HistoryConflict(str(exc)) from None
            raise
        return DeltaTable(self._ref.uri, storage_options=self._options()).version()
