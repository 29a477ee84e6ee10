"""Typed values in and out of the online stores: kinds, key checks and the Redis row format.

Every stored column has a *kind* derived from its Arrow type; values round-trip exactly as
the Python objects Arrow's ``to_pylist`` gives:

============  ==========================  ======================  =========================
kind          Arrow types                 SQLite column           Python value read back
============  ==========================  ======================  =========================
bool          bool                        INTEGER 0/1             bool
int           int8..int64, uint8..uint32  INTEGER                 int
float         float16/32/64               REAL (NaN as 'NaN')     float (NaN, ±inf kept)
str           string, large_string        TEXT                    str
bytes         binary, large_binary        BLOB                    bytes
decimal       decimal128/256              TEXT                    decimal.Decimal
date          date32, date64              INTEGER (days)          datetime.date
timestamp     timestamp without zone      INTEGER (µs)            naive datetime
timestamp_tz  timestamp with a zone       INTEGER (µs, UTC)       aware datetime (UTC)
json          list of bool/int/float/str  TEXT (JSON)             list
============  ==========================  ======================  =========================

Timestamps keep microseconds (nanoseconds are truncated, as everywhere in lakeloom).

Redis stores one packed value per key (:class:`RowCodec`): a 20-byte ASCII header holding the
event timestamp (so the newer-wins script can compare it without decoding the row), a null
bitmap, the fixed-width values as one :mod:`struct` record and the variable-length values
after it. Decoding is one ``struct.unpack_from`` plus a slice per text column: no object
deserialiser runs on what Redis returns.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakeloom.errors import InvalidArgument
from lakeloom.features.online.base import Column, OnlineTableSpec, key_error

__all__ = [
    "KEY_KINDS",
    "TIMESTAMP_KINDS",
    "RowCodec",
    "arrow_kind",
    "column_values",
    "drop_null_keys",
    "event_micros",
    "feature_key",
    "key_list",
    "key_normaliser",
    "plain_type",
    "read_converter",
    "table_name",
]

#: Kinds a primary key column may have.
KEY_KINDS = frozenset({"int", "str"})
#: Kinds a timestamp key column may have.
TIMESTAMP_KINDS = frozenset({"timestamp", "timestamp_tz", "date"})
#: Largest event time (µs from the epoch) stored exactly by every backend (Lua numbers are
#: doubles): years 1685 to 2255.
MAX_MICROS = 2**53 - 1

_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MICROS_PER_DAY = 86_400_000_000

_JSON_ELEMENTS = ("bool", "int", "float", "str")


def arrow_kind(field: pa.Field) -> str:
    """The kind of a column of Arrow type ``field.type``; InvalidArgument when unsupported."""
    t = field.type
    if pa.types.is_dictionary(t):
        return arrow_kind(pa.field(field.name, t.value_type))
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) and t != pa.uint64():
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "str"
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return "bytes"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp_tz" if t.tz else "timestamp"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and arrow_kind(
        pa.field("element", t.value_type)
    ) in _JSON_ELEMENTS:
        return "json"
    raise InvalidArgument(
        f"column {field.name!r} has type {t}, which the online store cannot serve; use a "
        "number, bool, string, binary, decimal, date, timestamp or a list of numbers, bools "
        "or strings"
    )


# -- writing: Arrow columns to stored values ------------------------------------------------
def _as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return col


def _micros(col: pa.Array) -> pa.Array:
    """Timestamps or dates as int64 microseconds since the epoch (UTC)."""
    if pa.types.is_date(col.type):
        days = col.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
        return pc.multiply(days, pa.scalar(_MICROS_PER_DAY, pa.int64()))
    return col.cast(pa.timestamp("us", col.type.tz), safe=False).cast(pa.int64())


def column_values(
    col: pa.Array | pa.ChunkedArray, kind: str, *, nan_text: bool = False
) -> list[Any]:
    """A column as the Python values a store keeps (None for nulls).

    Timestamps become int microseconds, dates int days, decimals text, lists JSON text;
    with ``nan_text`` a float NaN becomes the text ``'NaN'`` (SQLite stores NaN as NULL).
    """
    arr = _as_array(col)
    if kind in ("timestamp", "timestamp_tz"):
        return _micros(arr).to_pylist()
    if kind == "date":
        return arr.cast(pa.date32()).cast(pa.int32()).to_pylist()
    if kind == "decimal":
        return arr.cast(pa.string()).to_pylist()
    if kind == "json":
        return [
            None if v is None else json.dumps(v, separators=(",", ":")) for v in arr.to_pylist()
        ]
    if kind == "float":
        if not pa.types.is_float64(arr.type):
            arr = arr.cast(pa.float64())
        values = arr.to_pylist()
        if nan_text and pc.any(pc.is_nan(arr)).as_py():
            return ["NaN" if v is not None and v != v else v for v in values]
        return values
    if kind == "str" and not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    if kind == "bytes" and not pa.types.is_binary(arr.type):
        arr = arr.cast(pa.binary())
    return arr.to_pylist()


def event_micros(
    data: pa.RecordBatch | pa.Table, spec: OnlineTableSpec, now_micros: int
) -> list[int]:
    """Each row's event time in µs: its timestamp key, or ``now_micros`` without one.

    A null event time counts as older than any time (as in ``Engine.latest_per_key``).
    """
    if spec.timestamp_key is None:
        return [now_micros] * data.num_rows
    micros = _micros(_as_array(data.column(spec.timestamp_key)))
    if data.num_rows and micros.null_count < data.num_rows:
        lo, hi = pc.min_max(micros).values()
        if max(abs(lo.as_py()), abs(hi.as_py())) > MAX_MICROS:
            raise InvalidArgument(
                f"timestamp key {spec.timestamp_key!r} of {spec.name!r} holds a time outside "
                "the years 1685 to 2255, which the online store cannot order exactly"
            )
    if micros.null_count:
        micros = micros.fill_null(-MAX_MICROS)
    values: list[int] = micros.to_pylist()
    return values


def drop_null_keys(
    data: pa.RecordBatch | pa.Table, spec: OnlineTableSpec
) -> pa.RecordBatch | pa.Table:
    """``data`` without the rows that have a null in a key column (they cannot be looked up)."""
    mask = None
    for c in spec.keys:
        col = data.column(c.name)
        if col.null_count:
            valid = pc.is_valid(col)
            mask = valid if mask is None else pc.and_(mask, valid)
    return data if mask is None else data.filter(mask)


def plain_type(t: pa.DataType) -> pa.DataType:
    """``t`` without dictionary encoding, large or view variants (what lookups return)."""
    if pa.types.is_dictionary(t):
        return plain_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(plain_type(t.value_type))
    return t


# -- reading: stored values to Python -------------------------------------------------------
def _timestamp(v: int) -> datetime:
    return _EPOCH_NAIVE + timedelta(microseconds=v)


def _timestamp_tz(v: int) -> datetime:
    return _EPOCH_UTC + timedelta(microseconds=v)


def _date(v: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + v)


def _sqlite_float(v: Any) -> float:
    return v if type(v) is float else float(v)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "timestamp": _timestamp,
    "timestamp_tz": _timestamp_tz,
    "date": _date,
    "decimal": Decimal,
    "json": json.loads,
}


def read_converter(kind: str, backend: str) -> Callable[[Any], Any] | None:
    """The function turning a stored non-null value of ``kind`` back into its Python value
    (None when it is stored as is)."""
    if backend == "sqlite" and kind == "bool":
        return bool
    if backend == "sqlite" and kind == "float":
        return _sqlite_float
    return _CONVERTERS.get(kind)


# -- lookup keys ----------------------------------------------------------------------------
def _check_part(table: str, names: Sequence[str], key: object, kind: str, v: object) -> Any:
    as_py = getattr(v, "as_py", None)
    if as_py is not None:  # an Arrow scalar
        v = as_py()
        if v is None:
            raise key_error(table, names, key, "is null")
    if kind == "int":
        if type(v) is int:
            return v
        if isinstance(v, bool) or isinstance(v, float | str | bytes):
            raise key_error(
                table, names, key, f"has a {type(v).__name__} where an integer is expected"
            )
        index = getattr(v, "__index__", None)
        if index is not None:  # numpy and other integer types
            return int(index())
        raise key_error(table, names, key, f"has a {type(v).__name__} where an integer is expected")
    if type(v) is str:
        return v
    if isinstance(v, str):
        return str(v)
    raise key_error(table, names, key, f"has a {type(v).__name__} where a string is expected")


def key_normaliser(spec: OnlineTableSpec) -> Callable[[Any], Any]:
    """A function checking one lookup key and returning it as stored: the value for a
    one-column key, a tuple in key order otherwise.

    Accepted shapes: a scalar (one-column keys), a tuple or list in key order, or a mapping
    of key column to value. A wrong shape or type raises ``InvalidArgument``.
    """
    table, names = spec.name, spec.key_names
    kinds = [c.kind for c in spec.keys]

    if len(names) == 1:
        name, kind = names[0], kinds[0]
        fast: type = int if kind == "int" else str

        def single(key: Any) -> Any:
            if type(key) is fast:
                return key
            v = key
            if isinstance(key, Mapping):
                if name not in key:
                    raise key_error(table, names, key, f"has no {name!r}")
                v = key[name]
            elif isinstance(key, tuple | list):
                if len(key) != 1:
                    raise key_error(table, names, key, f"has {len(key)} parts, expected 1")
                v = key[0]
            if v is None:
                raise key_error(table, names, key, "is null")
            return _check_part(table, names, key, kind, v)

        return single

    def composite(key: Any) -> tuple[Any, ...]:
        if isinstance(key, Mapping):
            absent = [n for n in names if n not in key]
            if absent:
                raise key_error(table, names, key, f"has no {', '.join(map(repr, absent))}")
            parts = [key[n] for n in names]
        elif isinstance(key, tuple | list):
            if len(key) != len(names):
                raise key_error(table, names, key, f"has {len(key)} parts, expected {len(names)}")
            parts = list(key)
        else:
            raise key_error(
                table, names, key, "is a single value; give a tuple or a mapping of the key columns"
            )
        out = []
        for kind, v in zip(kinds, parts, strict=True):
            if v is None:
                raise key_error(table, names, key, "has a null part")
            out.append(_check_part(table, names, key, kind, v))
        return tuple(out)

    return composite


def key_list(keys: Any) -> list[Any]:
    """The keys of a lookup as a list (refusing a lone string or mapping, a common slip)."""
    if isinstance(keys, str | bytes) or not hasattr(keys, "__iter__"):
        raise InvalidArgument(
            f"keys must be a list of keys (e.g. [42] or [{{'customer_id': 42}}]), got {keys!r}"
        )
    if isinstance(keys, Mapping):
        raise InvalidArgument(
            "keys must be a list of keys; wrap a single key mapping in a list: [{...}]"
        )
    return list(keys)


def feature_key(features: Any) -> tuple[str, ...]:
    """The features asked for, as a tuple (refusing a lone string)."""
    if type(features) is tuple:
        return features
    if isinstance(features, str | bytes):
        raise InvalidArgument(
            f"features must be a list of feature names, got the string {features!r}"
        )
    return tuple(features)


def table_name(name: object) -> str:
    """An online table's stored name: table names are case-insensitive, stored lower case."""
    if not isinstance(name, str):
        raise InvalidArgument(
            f"an online table name is a string like 'features.customer', got {name!r}"
        )
    return name.strip().lower()


def key_text(parts: tuple[Any, ...]) -> str:
    """A composite key as one string, distinct for distinct keys (Redis key suffix)."""
    out = []
    for p in parts:
        if type(p) is int:
            out.append(str(p))
        else:
            out.append(p.replace("\\", "\\\\").replace("\x1f", "\\u001f"))
    return "\x1f".join(out)


# -- the Redis row format -------------------------------------------------------------------
_FIXED = {"bool": "?", "int": "q", "float": "d", "timestamp": "q", "timestamp_tz": "q", "date": "i"}
_FILL = {"bool": False, "int": 0, "float": 0.0, "timestamp": 0, "timestamp_tz": 0, "date": 0}
#: Bytes of the event-time header: ``%+020d`` of the µs, which Lua's ``tonumber`` reads.
HEADER = 20


def header(ts: int) -> bytes:
    """The event-time header of a packed row."""
    return b"%+020d" % ts


class RowCodec:
    """Packs a row of feature values (in spec order) into bytes and back.

    Layout: header (20 bytes) | null bitmap | struct of fixed-width values, with the byte
    length of each variable-width value | the variable-width values' bytes.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self.kinds = [c.kind for c in columns]
        self._fixed = struct.Struct("<" + "".join(_FIXED.get(k, "I") for k in self.kinds))
        self._null_bytes = (len(self.kinds) + 7) // 8
        self._body = HEADER + self._null_bytes
        self._var = [(i, k) for i, k in enumerate(self.kinds) if k not in _FIXED]
        self._convert = [
            (i, f) for i, k in enumerate(self.kinds) if (f := read_converter(k, "redis"))
        ]

    def encode_batch(self, data: pa.RecordBatch | pa.Table, ts: Sequence[int]) -> list[bytes]:
        """One packed value per row of ``data`` (which holds every column of the codec)."""
        n = data.num_rows
        masks = [0] * n
        cols: list[list[Any]] = []
        var_cols: list[list[bytes]] = []
        for i, c in enumerate(self.columns):
            arr = _as_array(data.column(c.name))
            if arr.null_count:
                bit = 1 << i
                for r in pc.indices_nonzero(arr.is_null()).to_pylist():
                    masks[r] |= bit
            values = column_values(arr, c.kind)
            if c.kind in _FIXED:
                if arr.null_count:
                    fill = _FILL[c.kind]
                    values = [fill if v is None else v for v in values]
                cols.append(values)
            else:
                if c.kind == "bytes":
                    raw = [b"" if v is None else v for v in values]
                else:
                    raw = [b"" if v is None else v.encode() for v in values]
                var_cols.append(raw)
                cols.append([len(v) for v in raw])
        pack, nb = self._fixed.pack, self._null_bytes
        rows = zip(*cols, strict=True) if cols else iter([()] * n)
        out = []
        if var_cols:
            for r, (t, m, row) in enumerate(zip(ts, masks, rows, strict=True)):
                out.append(
                    b"".join(
                        (header(t), m.to_bytes(nb, "little"), pack(*row), *(v[r] for v in var_cols))
                    )
                )
        else:
            for t, m, row in zip(ts, masks, rows, strict=True):
                out.append(header(t) + m.to_bytes(nb, "little") + pack(*row))
        return out

    def decode(self, blob: bytes) -> list[Any]:
        """The values of a packed row, in column order (its event time is :func:`event_time`)."""
        values = list(self._fixed.unpack_from(blob, self._body))
        if self._var:
            off = self._body + self._fixed.size
            for i, kind in self._var:
                size = values[i]
                raw = blob[off : off + size]
                off += size
                values[i] = raw if kind == "bytes" else raw.decode()
        mask = int.from_bytes(blob[HEADER : self._body], "little")
        if mask:
            i = 0
            while mask:
                if mask & 1:
                    values[i] = None
                mask >>= 1
                i += 1
        for i, f in self._convert:
            v = values[i]
            if v is not None:
                values[i] = f(v)
        return values


def event_time(blob: bytes) -> int:
    """The event time (µs) in a packed row's header."""
    return int(blob[:HEADER])
