"""Training sets: label rows joined with features as of each row's time, reproducibly.

Point-in-time semantics (the engines' :class:`~lakeloom.engines.base.PointInTimeLookup`):
for each label row, each lookup takes the feature row of the same key with the latest event
time at or before the label's time (at most ``lookback_window`` older when set). Feature rows
with the same key and event time are told apart by their feature values (the row whose
values sort last, column by column, nulls first): the result never depends on file order or
on the engine. Label rows without a match get ``default_values`` or nulls; duplicate label
rows stay separate rows, in the label frame's order; lookups without a time (or on a table
without a timestamp key) take the key's latest row.

**Write-time cutoff** (``write_time_cutoff=True``): also ignore feature rows *written* after
the label time. Each label row then sees the feature table as it was committed at that
time (Delta time travel: the newest table version committed at or before the label time,
never newer than the pinned version), so a backfill or correction written later cannot leak
into older labels. Label rows older than the table's first commit get no features. It
costs one join per distinct table version the label times fall in.

Every table is read at a version pinned when the training set is created, and
:meth:`TrainingSet.spec` records those versions, the lookups and where the labels came from,
so :func:`rebuild` reproduces the same rows bit for bit later (tag the versions with
:meth:`TrainingSet.snapshot` so that vacuum keeps them).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakeloom.engines.base import Engine, PointInTimeLookup
from lakeloom.engines.delta_log import arrow_schema, open_delta
from lakeloom.engines.pit_plan import check_lookups
from lakeloom.errors import InvalidArgument, SchemaMismatch
from lakeloom.features.lookups import FeatureLookup
from lakeloom.features.tables import FeatureTables
from lakeloom.lakehouse.tables import Tables
from lakeloom.models.data import Lineage

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LABEL_ROW", "ResolvedLookup", "TrainingSet", "rebuild", "resolve_lookups"]

#: Column numbering the label rows during a join (never in a result).
LABEL_ROW = "_lakeloom_label_row"
SPEC_FORMAT = 1


# -- values in JSON ----------------------------------------------------------------------
def encode_value(value: Any) -> Any:
    """A JSON form of a default value that :func:`decode_value` turns back exactly."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode_value(value: Any) -> Any:
    """The value :func:`encode_value` encoded."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, text),) = value.items()
        if kind == "$datetime":
            return datetime.fromisoformat(text)
        if kind == "$date":
            return date.fromisoformat(text)
        if kind == "$decimal":
            return Decimal(text)
        if kind == "$bytes":
            return base64.b64decode(text)
    return value


# -- lookups resolved against the tables -------------------------------------------------
@dataclass(frozen=True)
class ResolvedLookup:
    """A :class:`FeatureLookup` with what it read: table facts and the pinned version."""

    lookup: FeatureLookup
    table: str
    version: int
    primary_keys: tuple[str, ...]
    timestamp_key: str | None
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    #: By output name.
    default_values: dict[str, Any] = field(default_factory=dict)
    unique: bool = False

    @property
    def as_of(self) -> bool:
        """Whether rows match as of the label time (else: the latest row per key)."""
        return self.timestamp_key is not None and self.lookup.timestamp_lookup_key is not None

    def engine_lookup(self, tables: Tables, version: int | None = None) -> PointInTimeLookup:
        """The engine's form of this lookup (at ``version``, default the pinned one)."""
        return PointInTimeLookup(
            table=tables.resolve(self.table),
            keys=self.primary_keys,
            features=self.features,
            spine_keys=self.lookup.lookup_keys,
            timestamp=self.timestamp_key,
            spine_timestamp=self.lookup.timestamp_lookup_key if self.as_of else None,
            output_names=self.outputs,
            version=self.version if version is None else version,
            lookback=self.lookup.lookback,
            default_values=dict(self.default_values),
            unique=self.unique,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "lookup": {
                **self.lookup.to_dict(),
                "default_values": {
                    k: encode_value(v) for k, v in (self.lookup.default_values or {}).items()
                },
            },
            "table": self.table,
            "version": self.version,
            "primary_keys": list(self.primary_keys),
            "timestamp_key": self.timestamp_key,
            "features": list(self.features),
            "outputs": list(self.outputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, unique: bool = False) -> ResolvedLookup:
        """The lookup :meth:`to_dict` described (no table is read)."""
        raw = dict(data["lookup"])
        raw["default_values"] = {
            k: decode_value(v) for k, v in (raw.get("default_values") or {}).items()
        }
        lookup = FeatureLookup.from_dict(raw)
        features = tuple(data["features"])
        outputs = tuple(data["outputs"])
        defaults = {}
        for key, value in (lookup.default_values or {}).items():
            defaults[lookup.output_name(key) if key in features else key] = value
        return cls(
            lookup=lookup,
            table=str(data["table"]),
            version=int(data["version"]),
            primary_keys=tuple(data["primary_keys"]),
            timestamp_key=data.get("timestamp_key"),
            features=features,
            outputs=outputs,
            default_values=defaults,
            unique=unique,
        )


def _close(name: str, known: Sequence[str]) -> str:
    from difflib import get_close_matches

    close = get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def resolve_lookups(
    feature_tables: FeatureTables,
    lookups: Sequence[FeatureLookup],
    *,
    versions: Mapping[int, int] | None = None,
) -> list[ResolvedLookup]:
    """Check ``lookups`` against their tables and pin each table's version.

    ``versions`` (by lookup position) pins given versions instead of the latest.
    """
    if not lookups:
        raise InvalidArgument("a training set needs at least one FeatureLookup")
    out = []
    for i, lk in enumerate(lookups):
        if not isinstance(lk, FeatureLookup):
            raise InvalidArgument(
                f"feature_lookups[{i}] is {type(lk).__name__}, not a FeatureLookup"
            )
        definition, version, schema = feature_tables.pinned(
            lk.table_name, version=(versions or {}).get(i)
        )
        available = definition.features(schema)
        features = lk.features if lk.features is not None else tuple(available)
        for f in features:
            if f not in available:
                what = "is a key column, not a feature" if f in definition.key_columns else None
                raise InvalidArgument(
                    f"feature table {definition.name} has no feature {f!r}"
                    + (f" ({f} {what})" if what else _close(f, available))
                    + f"; its features: {', '.join(available) or 'none'}"
                )
        unknown = [k for k in (lk.rename_outputs or {}) if k not in features]
        if unknown:
            raise InvalidArgument(
                f"rename_outputs of {definition.name} renames {', '.join(map(repr, unknown))}, "
                f"which the lookup does not fetch; it fetches {', '.join(features)}"
            )
        if len(lk.lookup_keys) != len(definition.primary_keys):
            raise InvalidArgument(
                f"lookup_key {list(lk.lookup_keys)} of {definition.name} names "
                f"{len(lk.lookup_keys)} column(s), but the table's primary key has "
                f"{len(definition.primary_keys)}: {', '.join(definition.primary_keys)}"
            )
        outputs = tuple(lk.output_name(f) for f in features)
        defaults: dict[str, Any] = {}
        for key, value in (lk.default_values or {}).items():
            if key in features:
                defaults[lk.output_name(key)] = value
            elif key in outputs:
                defaults[key] = value
            else:
                raise InvalidArgument(
                    f"default_values of {definition.name} names {key!r}, which the lookup does "
                    f"not fetch; it fetches {', '.join(features)}"
                )
        out.append(
            ResolvedLookup(
                lookup=lk,
                table=definition.name,
                version=version,
                primary_keys=definition.primary_keys,
                timestamp_key=definition.timestamp_key,
                features=tuple(features),
                outputs=outputs,
                default_values=defaults,
                unique=feature_tables.verified_unique(definition.name, version),
            )
        )
    return out


def check_against_labels(
    tables: Tables, labels: pa.Schema, lookups: Sequence[ResolvedLookup]
) -> None:
    """Every error a join could raise, raised now: columns, key and time types, names."""
    for lk in lookups:
        missing = [c for c in lk.lookup.lookup_keys if c not in labels.names]
        if missing:
            raise SchemaMismatch(
                f"the label frame has no column(s) {', '.join(map(repr, missing))} (lookup_key "
                f"of {lk.table}); its columns: {', '.join(labels.names)}"
            )
        ts = lk.lookup.timestamp_lookup_key
        if ts is not None and ts not in labels.names:
            raise SchemaMismatch(
                f"the label frame has no column {ts!r} (timestamp_lookup_key of {lk.table}); "
                f"its columns: {', '.join(labels.names)}"
            )
    engine_lookups = [lk.engine_lookup(tables) for lk in lookups]
    schemas = [arrow_schema(open_delta(e.table, version=e.version)) for e in engine_lookups]
    check_lookups(labels, engine_lookups, schemas)


# -- the training set ----------------------------------------------------------------------
class TrainingSet:
    """Label rows with their point-in-time features; ``ws.train`` takes it as training data.

    >>> ts = fs.create_training_set(labels, [lookup], label="churned")  # doctest: +SKIP
    >>> ts.load_df().head()  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        tables: Tables,
        engine: Engine,
        labels: pa.Table,
        label_source: Mapping[str, Any],
        lookups: Sequence[ResolvedLookup],
        label: str | None,
        exclude_columns: Sequence[str] = (),
        write_time_cutoff: bool = False,
    ) -> None:
        self._tables = tables
        self._engine = engine
        self._labels = labels
        self.label_source = dict(label_source)
        self.lookups = list(lookups)
        self.label = label
        self.exclude_columns = list(exclude_columns)
        self.write_time_cutoff = write_time_cutoff
        if label is not None and label not in labels.column_names:
            raise SchemaMismatch(
                f"label {label!r} is not a column of the label frame; its columns: "
                f"{', '.join(labels.column_names)}"
            )
        if LABEL_ROW in labels.column_names:
            raise InvalidArgument(f"the label frame must not have a column named {LABEL_ROW!r}")
        check_against_labels(tables, labels.schema, self.lookups)
        columns = [*labels.column_names, *(o for lk in self.lookups for o in lk.outputs)]
        unknown = [c for c in self.exclude_columns if c not in columns]
        if unknown:
            raise InvalidArgument(
                f"exclude_columns names {', '.join(map(repr, unknown))}, which the training set "
                f"does not have; its columns: {', '.join(columns)}"
            )
        if label is not None and label in self.exclude_columns:
            raise InvalidArgument(f"the label {label!r} cannot be excluded")

    # -- what it holds -----------------------------------------------------------------
    @property
    def versions(self) -> dict[str, int]:
        """The Delta version read of every feature table (and of a label table)."""
        out = {lk.table: lk.version for lk in self.lookups}
        if self.label_source.get("kind") == "table":
            out.setdefault(str(self.label_source["name"]), int(self.label_source["version"]))
        return out

    @property
    def feature_columns(self) -> list[str]:
        """The looked-up feature columns, as named in the result."""
        return [o for lk in self.lookups for o in lk.outputs if o not in self.exclude_columns]

    @property
    def columns(self) -> list[str]:
        """The result's columns."""
        names = [*self._labels.column_names, *(o for lk in self.lookups for o in lk.outputs)]
        return [c for c in names if c not in self.exclude_columns]

    @property
    def spec(self) -> dict[str, Any]:
        """Everything :func:`rebuild` needs (JSON-friendly)."""
        return {
            "format": SPEC_FORMAT,
            "label": self.label,
            "exclude_columns": self.exclude_columns,
            "write_time_cutoff": self.write_time_cutoff,
            "labels": self.label_source,
            "label_columns": self._labels.column_names,
            "lookups": [lk.to_dict() for lk in self.lookups],
        }

    @property
    def lineage(self) -> Lineage:
        """What training logs: the tables and versions read, and the row count."""
        parts = [f"{name}@v{v}" for name, v in self.versions.items()]
        return Lineage(name=f"training set ({', '.join(parts)})", version=None, rows=len(self))

    def __len__(self) -> int:
        return int(self._labels.num_rows)

    def snapshot(self, tag: str) -> dict[str, int]:
        """Tag every table version this set read (vacuum then keeps them); returns them."""
        for name, version in self.versions.items():
            self._tables.tag(name, tag, version)
        return self.versions

    # -- the rows ----------------------------------------------------------------------
    def to_arrow(self) -> pa.Table:
        """The rows as one Arrow table, in the label frame's row order."""
        return self._result

    def load_df(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame (what ``ws.train`` trains on)."""
        return self._result.to_pandas()

    @cached_property
    def _result(self) -> pa.Table:
        n = self._labels.num_rows
        rows = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        spine = self._labels.append_column(LABEL_ROW, pa.array(rows))
        if self.write_time_cutoff:
            result = self._join_with_cutoff(spine)
        else:
            engine_lookups = [lk.engine_lookup(self._tables) for lk in self.lookups]
            result = self._in_label_order(
                self._engine.to_arrow(self._engine.point_in_time_join(spine, engine_lookups))
            )
        return result.drop_columns([LABEL_ROW, *self.exclude_columns])

    @staticmethod
    def _in_label_order(result: pa.Table) -> pa.Table:
        rows = result.column(LABEL_ROW).to_numpy()
        n = len(rows)
        # Each label row comes back once: increasing from 0 to n - 1 means in label order.
        if n and rows[0] == 0 and rows[-1] == n - 1 and bool(np.all(rows[1:] > rows[:-1])):
            return result
        order = np.empty(n, dtype=np.int64)
        order[rows] = np.arange(n, dtype=np.int64)
        return result.take(pa.array(order))

    def _join_with_cutoff(self, spine: pa.Table) -> pa.Table:
        result = spine
        for lk in self.lookups:
            if not lk.as_of:
                got = self._engine.point_in_time_join(
                    self._key_spine(spine, lk), [lk.engine_lookup(self._tables)]
                )
                got = self._in_label_order(self._engine.to_arrow(got))
            else:
                got = self._as_committed(spine, lk)
            for name in lk.outputs:
                result = result.append_column(name, got.column(name))
        return result

    @staticmethod
    def _key_spine(spine: pa.Table, lk: ResolvedLookup) -> pa.Table:
        cols = [LABEL_ROW, *lk.lookup.lookup_keys]
        if lk.lookup.timestamp_lookup_key is not None:
            cols.append(lk.lookup.timestamp_lookup_key)
        return spine.select(list(dict.fromkeys(cols)))

    def _as_committed(self, spine: pa.Table, lk: ResolvedLookup) -> pa.Table:
        """``lk`` joined for each label row with the table version current at its time."""
        history = [h for h in self._tables.history(lk.table) if h["version"] <= lk.version]
        history.sort(key=lambda h: h["version"])
        versions = np.array([h["version"] for h in history], dtype=np.int64)
        committed = np.maximum.accumulate(
            np.array([_micros(h["timestamp"]) for h in history], dtype=np.int64)
        )
        ts_name = lk.lookup.timestamp_lookup_key
        assert ts_name is not None
        times = pc.cast(spine.column(ts_name), pa.timestamp("us", tz="UTC"))
        label_us = pc.fill_null(pc.cast(times, pa.int64()), np.iinfo(np.int64).min).to_numpy()
        slot = np.searchsorted(committed, label_us, side="right") - 1
        small = self._key_spine(spine, lk)
        pieces = []
        for s in np.unique(slot):
            rows = small.filter(pa.array(slot == s))
            if s < 0:  # before the table's first commit: nothing was written yet
                pieces.append(self._no_match(rows, lk))
                continue
            version = int(versions[s])
            base = lk.engine_lookup(self._tables, version)
            engine_lookup = PointInTimeLookup(
                **{
                    **{f: getattr(base, f) for f in base.__dataclass_fields__},
                    "unique": self._unique(lk.table, version),
                }
            )
            got = self._engine.point_in_time_join(rows, [engine_lookup])
            pieces.append(self._engine.to_arrow(got).select([LABEL_ROW, *lk.outputs]))
        joined = pa.concat_tables([p.cast(pieces[0].schema) for p in pieces])
        return self._in_label_order(joined)

    def _unique(self, table: str, version: int) -> bool:
        return FeatureTables(self._tables, self._engine).verified_unique(table, version)

    def _no_match(self, rows: pa.Table, lk: ResolvedLookup) -> pa.Table:
        schema = arrow_schema(open_delta(self._tables.resolve(lk.table), version=lk.version))
        cols: dict[str, Any] = {LABEL_ROW: rows.column(LABEL_ROW)}
        for feature, name in zip(lk.features, lk.outputs, strict=True):
            typ = schema.field(feature).type
            cols[name] = pa.array([lk.default_values.get(name)] * rows.num_rows, typ)
        return pa.table(cols)


def _micros(value: datetime | None) -> int:
    if value is None:
        return np.iinfo(np.int64).min
    return int(value.timestamp() * 1_000_000)


def rebuild(
    tables: Tables,
    engine: Engine,
    spec: Mapping[str, Any],
    *,
    labels: Any = None,
) -> TrainingSet:
    """The training set ``spec`` describes, reading the same table versions again.

    Labels that came from a table are read at the recorded version; labels that came from a
    DataFrame must be passed again (``labels=``), with the same columns.
    """
    if spec.get("format") != SPEC_FORMAT:
        raise InvalidArgument(
            f"training set spec format {spec.get('format')!r} is not supported (expected "
            f"{SPEC_FORMAT}); was it written by a newer lakeloom?"
        )
    source = dict(spec["labels"])
    if labels is None:
        if source.get("kind") != "table":
            raise InvalidArgument(
                "this training set was built from a DataFrame of labels: pass the same labels "
                "again with labels=..."
            )
        frame = engine.to_arrow(tables.read(source["name"], version=int(source["version"])))
    else:
        frame = engine.to_arrow(engine.from_input(labels))
        expected = list(spec.get("label_columns") or frame.column_names)
        if frame.column_names != expected:
            raise SchemaMismatch(
                f"the labels have columns {frame.column_names}; the training set was built "
                f"from {expected}"
            )
    feature_tables = FeatureTables(tables, engine)
    lookups = []
    for raw in spec["lookups"]:
        lk_raw = dict(raw["lookup"])
        lk_raw["default_values"] = {
            k: decode_value(v) for k, v in (lk_raw.get("default_values") or {}).items()
        }
        lookup = FeatureLookup.from_dict(lk_raw)
        resolved = resolve_lookups(feature_tables, [lookup], versions={0: int(raw["version"])})
        lookups.append(resolved[0])
    return TrainingSet(
        tables=tables,
        engine=engine,
        labels=frame,
        label_source=source,
        lookups=lookups,
        label=spec.get("label"),
        exclude_columns=list(spec.get("exclude_columns") or []),
        write_time_cutoff=bool(spec.get("write_time_cutoff")),
    )
