"""A model's input columns and the checks each request's values go through.

The schema comes from the MLflow signature (column name, MLflow type, required). Each column
gets a converter from JSON values, built once per model version, so a request is checked
without pandas: numbers for numeric columns (booleans refused), whole numbers in range for
integer columns, strings for string columns. Errors name the row, the column and the type
expected, and describe what was sent only by its JSON kind, never by its value.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BadValue",
    "ColumnSpec",
    "InputSchema",
    "RequestError",
    "bad_value",
    "columns_of",
    "convert_csv_value",
    "infer_types",
    "json_kind",
]

#: MLflow column types lakeloom checks, and the numpy dtype a batch column gets.
DTYPES: dict[str, Any] = {
    "double": np.float64,
    "float": np.float32,
    "long": np.int64,
    "integer": np.int32,
    "boolean": np.bool_,
    "string": object,
    "datetime": "datetime64[us]",
    "binary": object,
}
NUMERIC = frozenset({"double", "float", "long", "integer"})
_INT_RANGE = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
_FLOAT32_MAX = 3.4028234663852886e38
#: Integers beyond this do not fit a double (float() raises OverflowError).
_INT_DOUBLE = 2**1023


class RequestError(Exception):
    """A request that cannot be scored: its HTTP status and a message safe to return.

    The message never contains values from the payload, only column names and types.
    """

    def __init__(self, status: int, message: str, error_code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


class BadValue(Exception):
    """A value a converter refuses; ``kind`` describes it without its value."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def json_kind(value: Any) -> str:
    """What a JSON value is, in words, without the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value of another kind"


def _double(value: Any) -> Any:
    t = type(value)
    if t is float:
        return value
    if t is int:
        try:
            return float(value)
        except OverflowError:
            raise BadValue("a number too large for double") from None
    if value is None:
        return math.nan
    raise BadValue(json_kind(value))


def _float32(value: Any) -> Any:
    v = _double(value)
    if math.isfinite(v) and abs(v) > _FLOAT32_MAX:
        raise BadValue("a number too large for float")
    return v


def _integer(kind: str) -> Callable[[Any], Any]:
    low, high = _INT_RANGE[kind]

    def convert(value: Any) -> Any:
        t = type(value)
        if t is float:
            if not math.isfinite(value) or not value.is_integer():
                raise BadValue("a fractional or non-finite number")
            value = int(value)
        elif t is not int:
            raise BadValue(json_kind(value))
        if not low <= value <= high:
            raise BadValue(f"a number out of the range of {kind}")
        return value

    return convert


def _boolean(value: Any) -> Any:
    if type(value) is bool:
        return value
    raise BadValue(json_kind(value))


def _string(value: Any) -> Any:
    if type(value) is str or value is None:
        return value
    raise BadValue(json_kind(value))


def _datetime(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not str:
        raise BadValue(json_kind(value))
    try:
        np.datetime64(value.replace("Z", "").replace("z", ""), "us")
    except ValueError:
        raise BadValue("a string that is not an ISO 8601 timestamp") from None
    return value


def _binary(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not str:
        raise BadValue(json_kind(value))
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadValue("a string that is not base64") from None


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "double": _double,
    "float": _float32,
    "long": _integer("long"),
    "integer": _integer("integer"),
    "boolean": _boolean,
    "string": _string,
    "datetime": _datetime,
    "binary": _binary,
}


def _label(name: str) -> str:
    return repr(name if len(name) <= 64 else name[:61] + "...")


def bad_value(row: int | None, column: str, expected: str, kind: str) -> RequestError:
    """The 400 for one value: names the row, the column and the expected type."""
    where = f"row {row}: " if row is not None else ""
    return RequestError(400, f"{where}column {_label(column)} expects {expected}, got {kind}")


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, MLflow type and whether a request must carry it."""

    name: str
    type: str
    required: bool = True


class InputSchema:
    """The columns a model takes, with a converter per column built once."""

    def __init__(self, columns: Sequence[ColumnSpec]) -> None:
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in self.columns)
        self.types = tuple(c.type for c in self.columns)
        self.converters = tuple(_CONVERTERS[c.type] for c in self.columns)
        self.index = {c.name: i for i, c in enumerate(self.columns)}
        # Position plans by the column order a client sends (cached: clients repeat it).
        self._plans: dict[tuple[str, ...], tuple[tuple[int, ...], int]] = {}
        self._all_double = all(t == "double" for t in self.types)
        self._identity = tuple(range(len(self.columns)))

    @classmethod
    def from_mlflow(cls, inputs: Any) -> InputSchema | None:
        """From an MLflow signature's ``inputs``; None for tensor or unsupported schemas."""
        if inputs is None or getattr(inputs, "is_tensor_spec", lambda: True)():
            return None
        specs = []
        for col in inputs.inputs:
            name = getattr(col, "name", None)
            kind = getattr(getattr(col, "type", None), "name", None)
            if name is None or kind not in _CONVERTERS:
                return None
            specs.append(ColumnSpec(str(name), str(kind), bool(getattr(col, "required", True))))
        return cls(specs) if specs else None

    def to_dict(self) -> list[dict[str, Any]]:
        """A JSON-friendly form (for ``/ready`` and the OpenAPI description)."""
        return [{"name": c.name, "type": c.type, "required": c.required} for c in self.columns]

    def plan(self, sent: tuple[str, ...]) -> tuple[tuple[int, ...], int]:
        """For columns in the order ``sent``, where each schema column is (-1: absent)."""
        found = self._plans.get(sent)
        if found is not None:
            return found
        where = {name: i for i, name in enumerate(sent)}
        if len(where) != len(sent):
            raise RequestError(400, "the request names a column twice")
        positions = []
        for spec in self.columns:
            pos = where.get(spec.name, -1)
            if pos < 0 and spec.required:
                raise RequestError(400, f"missing column {_label(spec.name)} ({spec.type})")
            positions.append(pos)
        plan = (tuple(positions), len(sent))
        if len(self._plans) < 256:
            self._plans[sent] = plan
        return plan

    def convert_rows(
        self, rows: Iterable[Any], plan: tuple[tuple[int, ...], int]
    ) -> list[tuple[Any, ...]]:
        """Rows (arrays in the ``sent`` order) as tuples in schema order, checked."""
        positions, width = plan
        if self._all_double and positions == self._identity and type(rows) is list:
            fast = _double_rows(rows, width)
            if fast is not None:
                return fast
        converters = self.converters
        pairs = tuple(zip(positions, converters, strict=True))
        out = []
        for r, row in enumerate(rows):
            if type(row) is not list:
                raise RequestError(400, f"row {r} is {json_kind(row)}, not an array of values")
            if len(row) != width:
                raise RequestError(
                    400, f"row {r} has {len(row)} values but the request names {width} columns"
                )
            try:
                out.append(tuple([conv(row[p]) if p >= 0 else None for p, conv in pairs]))
            except BadValue:
                raise self._explain(r, row, positions) from None
        return out

    def convert_records(self, records: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Records (objects of column name to value) as tuples in schema order, checked."""
        present: set[str] = set()
        for r, rec in enumerate(records):
            if type(rec) is not dict:
                raise RequestError(400, f"record {r} is {json_kind(rec)}, not an object")
            present.update(k for k in self.names if k in rec)
        for spec in self.columns:
            if spec.required and spec.name not in present:
                raise RequestError(400, f"missing column {_label(spec.name)} ({spec.type})")
        out = []
        for r, rec in enumerate(records):
            values = []
            for spec, conv in zip(self.columns, self.converters, strict=True):
                try:
                    values.append(conv(rec.get(spec.name)))
                except BadValue as exc:
                    raise bad_value(r, spec.name, spec.type, exc.kind) from None
            out.append(tuple(values))
        return out

    def _explain(self, r: int, row: list[Any], positions: tuple[int, ...]) -> RequestError:
        for spec, conv, p in zip(self.columns, self.converters, positions, strict=True):
            if p < 0:
                continue
            try:
                conv(row[p])
            except BadValue as exc:
                return bad_value(r, spec.name, spec.type, exc.kind)
        return RequestError(400, f"row {r} cannot be read")  # pragma: no cover


_NUMBER_TYPES = frozenset({float, int})


def _double_rows(rows: list[Any], width: int) -> list[tuple[Any, ...]] | None:
    """All-double rows in schema order, checked in bulk; None: check value by value.

    Only plain numbers pass (booleans, strings, nulls and nested values take the slow path,
    which explains the first bad value); integers too large for a double do not pass.
    """
    if set(map(type, rows)) != {list} or set(map(len, rows)) != {width}:
        return None
    kinds = set(map(type, itertools.chain.from_iterable(rows)))
    if not kinds <= _NUMBER_TYPES:
        return None
    if int in kinds:
        ints = [v for v in itertools.chain.from_iterable(rows) if type(v) is int]
        if max(ints) > _INT_DOUBLE or min(ints) < -_INT_DOUBLE:
            return None
    return list(map(tuple, rows))


def infer_types(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> tuple[str, ...]:
    """MLflow types of a schema-less request's columns, from its values.

    Nested values, booleans mixed with numbers and strings mixed with numbers are refused.
    """
    out = []
    for i, name in enumerate(columns):
        kinds = {type(row[i]) for row in rows} - {type(None)}
        if kinds & {list, dict}:
            raise RequestError(400, f"column {_label(name)} holds nested values (arrays/objects)")
        if not kinds:
            out.append("double")
        elif kinds == {bool}:
            out.append("boolean")
        elif kinds <= {int}:
            big = any(type(row[i]) is int and not -(2**63) <= row[i] < 2**63 for row in rows)
            out.append("double" if big else "long")
        elif kinds <= {int, float}:
            out.append("double")
        elif kinds == {str}:
            out.append("string")
        elif bool in kinds:
            raise RequestError(400, f"column {_label(name)} mixes booleans with other values")
        else:
            raise RequestError(400, f"column {_label(name)} mixes strings and numbers")
    return tuple(out)


def convert_csv_value(text: str, kind: str) -> Any:
    """A CSV cell as the type ``kind`` (an empty cell is null); raises ``BadValue``."""
    if kind in ("double", "float"):
        if text == "":
            return math.nan
        try:
            return _CONVERTERS[kind](float(text))
        except ValueError:
            raise BadValue("text that is not a number") from None
    if kind in ("long", "integer"):
        if text == "":
            raise BadValue("an empty cell")
        try:
            return _CONVERTERS[kind](int(text))
        except ValueError:
            raise BadValue("text that is not a whole number") from None
    if kind == "boolean":
        low = text.strip().lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise BadValue("text that is not true or false")
    if text == "" and kind != "string":
        return None
    return _CONVERTERS[kind](text)


def columns_of(rows: Sequence[tuple[Any, ...]], types: Sequence[str]) -> list[np.ndarray[Any, Any]]:
    """Rows as one numpy array per column, with the dtype of each column's type."""
    if not rows:
        return [np.empty(0, dtype=DTYPES[t]) for t in types]
    out = []
    for values, kind in zip(zip(*rows, strict=True), types, strict=True):
        dtype = DTYPES[kind]
        if kind in ("long", "integer", "boolean") and None in values:
            dtype = object
        try:
            out.append(np.array(values, dtype=dtype))
        except (ValueError, TypeError, OverflowError):
            out.append(np.array(values, dtype=object))
    return out
