"""Checks and rules shared by every engine's point-in-time join and latest-row-per-key.

Both engines validate a join the same way, on Arrow schemas, before any data moves, so a bad
lookup fails with the same message everywhere; and both break ties with the same rule
(:func:`tiebreak_columns`), so they return the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from lakeloom.engines.base import PointInTimeLookup
from lakeloom.errors import InvalidArgument, SchemaMismatch

__all__ = [
    "INTERNAL_PREFIX",
    "ROW_ID",
    "check_latest",
    "check_lookups",
    "is_orderable",
    "is_time",
    "key_kind",
    "tiebreak_columns",
]

#: Prefix of the columns engines add while joining (never in a result, refused in a spine).
INTERNAL_PREFIX = "__lakeloom_"
#: Column that numbers the spine's rows inside a join.
ROW_ID = INTERNAL_PREFIX + "row"


def is_time(t: pa.DataType) -> bool:
    """Whether ``t`` can be an event time (a timestamp of any unit or zone, or a date)."""
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def is_orderable(t: pa.DataType) -> bool:
    """Whether a column of type ``t`` takes part in tie-breaks (flat values only)."""
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_time(t)
    )


def key_kind(t: pa.DataType) -> str:
    """The family a key type compares within: integers match integers, strings strings."""
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_timestamp(t):
        return "timestamp"
    return str(t)


def tiebreak_columns(schema: pa.Schema, columns: Sequence[str]) -> list[str]:
    """Of ``columns``, those that order rows with equal keys and time (flat types)."""
    return [c for c in columns if is_orderable(schema.field(c).type)]


def _missing(what: str, names: Sequence[str], have: Sequence[str]) -> SchemaMismatch:
    return SchemaMismatch(
        f"{what} has no column(s) {', '.join(map(repr, names))}; its columns: {', '.join(have)}"
    )


def check_latest(
    name: str, schema: pa.Schema, keys: Sequence[str], ts: str | None, columns: Sequence[str]
) -> None:
    """Validate a :meth:`Engine.latest_per_key` call against the table's schema."""
    if not keys:
        raise InvalidArgument("latest_per_key needs at least one key column")
    wanted = [*keys, *([ts] if ts else []), *columns]
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise _missing(f"table {name}", missing, schema.names)
    if ts is not None and not is_time(schema.field(ts).type):
        raise InvalidArgument(
            f"timestamp column {ts!r} of table {name} is {schema.field(ts).type}; it must be "
            "a timestamp or a date"
        )


def check_lookups(
    spine: pa.Schema, lookups: Sequence[PointInTimeLookup], tables: Sequence[pa.Schema]
) -> None:
    """Validate a :meth:`Engine.point_in_time_join` against the spine's and tables' schemas.

    Raises before any data moves: missing columns and key types that cannot be compared
    (``SchemaMismatch``), time columns that are no times, output names used twice, defaults
    for unknown outputs and a lookback without a spine time (``InvalidArgument``).
    """
    taken = set(spine.names)
    reserved = sorted(c for c in taken if c.startswith(INTERNAL_PREFIX))
    if reserved:
        raise InvalidArgument(
            f"the spine's column(s) {', '.join(map(repr, reserved))} use the prefix "
            f"{INTERNAL_PREFIX!r}, which lakeloom reserves for its own columns; rename them"
        )
    for lookup, schema in zip(lookups, tables, strict=True):
        name = lookup.table.name
        if not lookup.keys:
            raise InvalidArgument(f"the lookup of table {name} needs at least one key column")
        if len(lookup.spine_key_columns) != len(lookup.keys):
            raise InvalidArgument(
                f"the lookup of table {name} matches {len(lookup.spine_key_columns)} spine "
                f"column(s) with {len(lookup.keys)} key column(s) "
                f"({', '.join(lookup.keys)}); give one spine column per key"
            )
        if len(lookup.outputs) != len(lookup.features):
            raise InvalidArgument(
                f"the lookup of table {name} names {len(lookup.outputs)} output(s) for "
                f"{len(lookup.features)} feature(s)"
            )
        in_table = [
            *lookup.keys,
            *lookup.features,
            *([lookup.timestamp] if lookup.timestamp else []),
            *([lookup.written_at] if lookup.written_at else []),
        ]
        missing = [c for c in dict.fromkeys(in_table) if c not in schema.names]
        if missing:
            raise _missing(f"table {name}", missing, schema.names)
        in_spine = [
            *lookup.spine_key_columns,
            *([lookup.spine_timestamp] if lookup.spine_timestamp else []),
        ]
        missing = [c for c in dict.fromkeys(in_spine) if c not in spine.names]
        if missing:
            raise _missing(f"the spine (lookup of {name})", missing, spine.names)
        for key, skey in zip(lookup.keys, lookup.spine_key_columns, strict=True):
            tt, st = schema.field(key).type, spine.field(skey).type
            if key_kind(tt) != key_kind(st):
                raise SchemaMismatch(
                    f"key {skey!r} is {st} in the spine but {key!r} is {tt} in table {name}; "
                    "cast one of them so that both are integers or both strings"
                )
        for column, where, typ in (
            (lookup.timestamp, f"table {name}", schema),
            (lookup.written_at, f"table {name}", schema),
            (lookup.spine_timestamp, "the spine", spine),
        ):
            if column is not None and not is_time(typ.field(column).type):
                raise InvalidArgument(
                    f"timestamp column {column!r} of {where} is {typ.field(column).type}; "
                    "it must be a timestamp or a date"
                )
        if lookup.lookback is not None:
            if not lookup.as_of:
                raise InvalidArgument(
                    f"the lookup of table {name} has a lookback window but no spine time to "
                    "count it from; set the spine's timestamp column or drop the lookback"
                )
            if lookup.lookback.total_seconds() < 0:
                raise InvalidArgument(f"the lookback of table {name} must not be negative")
        if lookup.written_at is not None and not lookup.as_of:
            raise InvalidArgument(
                f"the write-time cutoff of table {name} needs a spine time; set the spine's "
                "timestamp column"
            )
        unknown = [d for d in lookup.default_values if d not in lookup.outputs]
        if unknown:
            raise InvalidArgument(
                f"default value(s) for {', '.join(map(repr, unknown))}, which the lookup of "
                f"table {name} does not output; its outputs: {', '.join(lookup.outputs)}"
            )
        for out in lookup.outputs:
            if out in taken:
                raise InvalidArgument(
                    f"output column {out!r} of the lookup of table {name} is already a "
                    "column of the spine or of another lookup; rename it (rename_outputs)"
                )
            taken.add(out)
