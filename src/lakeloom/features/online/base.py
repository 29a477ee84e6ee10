"""What every online store implements, and the value types they exchange.

An online store keeps, per published table, one row per primary key: its feature values and
the event timestamp they were valid at. Two rules hold in every backend:

* **Newer wins.** A write replaces a stored row only when its event timestamp is the same or
  newer; an older row is ignored (so replays, retries and out-of-order chunks are harmless).
* **TTL on read.** A table published with a ``ttl`` serves a row only while
  ``now - event_timestamp <= ttl``; older rows read as missing (and are reclaimed later:
  Redis expires them, SQLite deletes them at the next publish).

Publishing a snapshot writes into a fresh *generation* that readers do not see until
:meth:`OnlineStore.commit` switches to it in one step, then deletes the replaced generation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from difflib import get_close_matches
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from lakeloom.errors import InvalidArgument, LakeloomError, TableNotFound

__all__ = [
    "Column",
    "KeyInput",
    "OnlineStore",
    "OnlineStoreError",
    "OnlineTableInfo",
    "OnlineTableNotFound",
    "OnlineTableSpec",
    "PartitionWriter",
    "PublishState",
    "UnknownFeature",
    "WriteCounts",
]

#: One key in a lookup: a scalar (one primary key column), a tuple in primary-key order, or
#: a mapping of primary-key column to value.
KeyInput = Any


class OnlineStoreError(LakeloomError):
    """The online store cannot be reached or used (Redis down, unwritable SQLite file...)."""


class OnlineTableNotFound(TableNotFound):
    """A lookup or drop named a table that was never published to the online store."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        close = get_close_matches(name, list(known), n=3, cutoff=0.6)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else f"; publish it first (lakeloom features publish {name})"
        )
        LakeloomError.__init__(self, f"table {name!r} is not published online{hint}")
        self.name = name
        self.close_matches = close


class UnknownFeature(InvalidArgument, LookupError):
    """A lookup asked for a feature the published table does not have."""

    def __init__(self, table: str, feature: str, known: Sequence[str]) -> None:
        close = get_close_matches(feature, list(known), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else f"it has: {', '.join(known)}"
        super().__init__(f"online table {table!r} has no feature {feature!r}; {hint}")
        self.table = table
        self.feature = feature


@dataclass(frozen=True)
class Column:
    """A stored column: its name and value kind (see :mod:`lakeloom.features.online.codec`)."""

    name: str
    kind: str


@dataclass(frozen=True)
class OnlineTableSpec:
    """The layout of one online table: what a write must provide and a lookup returns.

    ``schema`` is the Arrow schema of the key and feature columns (exact types, used to build
    Arrow results); ``generation`` names the physical copy being written or served.
    """

    name: str
    keys: tuple[Column, ...]
    features: tuple[Column, ...]
    timestamp_key: str | None
    schema: pa.Schema
    ttl_seconds: float | None = None
    generation: int = 0

    @property
    def key_names(self) -> list[str]:
        """The primary-key column names, in key order."""
        return [c.name for c in self.keys]

    @property
    def feature_names(self) -> list[str]:
        """The feature column names, in stored order."""
        return [c.name for c in self.features]

    def same_layout(self, other: OnlineTableSpec) -> bool:
        """Whether ``other`` stores the same columns with the same types (TTL may differ)."""
        return (
            self.keys == other.keys
            and self.features == other.features
            and self.timestamp_key == other.timestamp_key
            and self.schema.equals(other.schema)
        )

    def with_generation(self, generation: int) -> OnlineTableSpec:
        """This spec, writing into ``generation``."""
        return replace(self, generation=generation)

    def to_json(self) -> str:
        """A JSON text that :meth:`from_json` reads back."""
        return json.dumps(
            {
                "name": self.name,
                "keys": [[c.name, c.kind] for c in self.keys],
                "features": [[c.name, c.kind] for c in self.features],
                "timestamp_key": self.timestamp_key,
                "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
                "ttl_seconds": self.ttl_seconds,
                "generation": self.generation,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> OnlineTableSpec:
        """The spec that :meth:`to_json` wrote."""
        data = json.loads(text)
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["schema"])))
        return cls(
            name=data["name"],
            keys=tuple(Column(n, k) for n, k in data["keys"]),
            features=tuple(Column(n, k) for n, k in data["features"]),
            timestamp_key=data["timestamp_key"],
            schema=schema,
            ttl_seconds=data["ttl_seconds"],
            generation=int(data["generation"]),
        )


@dataclass(frozen=True)
class PublishState:
    """What the last publish of a table recorded (for incremental publishing and display)."""

    mode: str
    source: str | None = None
    source_version: int | None = None
    published_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    rows_written: int = 0

    def to_json(self) -> str:
        """A JSON text that :meth:`from_json` reads back."""
        return json.dumps(
            {
                "mode": self.mode,
                "source": self.source,
                "source_version": self.source_version,
                "published_at": self.published_at.isoformat(),
                "rows_written": self.rows_written,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> PublishState:
        """The state that :meth:`to_json` wrote."""
        data = json.loads(text)
        return cls(
            mode=data["mode"],
            source=data.get("source"),
            source_version=data.get("source_version"),
            published_at=datetime.fromisoformat(data["published_at"]),
            rows_written=int(data.get("rows_written", 0)),
        )


@dataclass(frozen=True)
class OnlineTableInfo:
    """A published table: its layout and its last publish."""

    spec: OnlineTableSpec
    state: PublishState

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (for ``--json`` output)."""
        return {
            "name": self.spec.name,
            "primary_keys": self.spec.key_names,
            "timestamp_key": self.spec.timestamp_key,
            "features": [
                {"name": f.name, "type": str(self.spec.schema.field(f.name).type)}
                for f in self.spec.features
            ],
            "ttl_seconds": self.spec.ttl_seconds,
            "generation": self.spec.generation,
            "mode": self.state.mode,
            "source": self.state.source,
            "source_version": self.state.source_version,
            "published_at": self.state.published_at.isoformat(),
            "rows_written": self.state.rows_written,
        }


@dataclass(frozen=True)
class WriteCounts:
    """Rows a write received and rows it stored (the others were older than what was there)."""

    received: int = 0
    applied: int = 0

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(self.received + other.received, self.applied + other.applied)


#: Writes Arrow batches of one spec from wherever it runs (a Spark executor): picklable.
PartitionWriter = Callable[[OnlineTableSpec, Iterator[pa.RecordBatch]], WriteCounts]


@runtime_checkable
class OnlineStore(Protocol):
    """The small interface every online backend implements (SQLite, Redis).

    Lookups (:meth:`get`) are the hot path; everything else serves publishing.
    """

    #: Short name used in settings and messages ("sqlite", "redis").
    kind: str

    def get(
        self, name: str, keys: Iterable[KeyInput], features: Sequence[str] | None = None
    ) -> list[dict[str, Any] | None]:
        """One result per key, in order: the key columns and features, or None when the key
        is absent or its row is older than the table's TTL.

        Raises :class:`OnlineTableNotFound`, :class:`UnknownFeature`, or
        :class:`~lakeloom.errors.InvalidArgument` for a key of the wrong shape or type.
        """
        ...

    def describe(self, name: str) -> OnlineTableInfo | None:
        """The published table ``name`` (None when it was never published)."""
        ...

    def list_tables(self) -> list[str]:
        """Names of the published tables, sorted."""
        ...

    def begin(self, spec: OnlineTableSpec, *, fresh: bool) -> OnlineTableSpec:
        """Prepare to write ``spec``; returns the spec to pass to :meth:`write`.

        ``fresh=True`` allocates a new, empty generation that readers do not see until
        :meth:`commit`; ``fresh=False`` writes into the table's current generation (the
        layout must then be the current one).
        """
        ...

    def write(self, spec: OnlineTableSpec, batch: pa.RecordBatch | pa.Table) -> WriteCounts:
        """Upsert rows (key, feature and timestamp columns) with newer-wins, atomically per
        batch. Raises ``InvalidArgument`` for null keys or timestamps."""
        ...

    def commit(self, spec: OnlineTableSpec, state: PublishState) -> None:
        """Make ``spec`` (its generation, TTL) what readers see and record ``state``; a
        replaced generation is then deleted, and rows past the TTL are reclaimed.

        Raises ``ConcurrentWriteConflict`` when another publish committed a newer generation
        meanwhile (nothing is changed).
        """
        ...

    def abort(self, spec: OnlineTableSpec) -> None:
        """Discard a generation begun with ``fresh=True`` that will not be committed."""
        ...

    def drop(self, name: str) -> None:
        """Delete a published table (raises :class:`OnlineTableNotFound` when absent)."""
        ...

    def partition_writer(self) -> PartitionWriter | None:
        """A picklable writer that Spark executors can run, or None when only this process
        can write (a SQLite file: publishing then streams chunks to the driver)."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


def key_error(table: str, key_names: Sequence[str], key: object, why: str) -> InvalidArgument:
    """The error for a lookup key that does not fit the table's primary key."""
    shape = key_names[0] if len(key_names) == 1 else "(" + ", ".join(key_names) + ")"
    return InvalidArgument(
        f"key {key!r} for online table {table!r} {why}; its primary key is {shape}"
    )
