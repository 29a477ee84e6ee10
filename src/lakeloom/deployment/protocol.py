"""MLflow's scoring protocol: request bodies in, ``{"predictions": ...}`` out.

Accepted like ``mlflow models serve`` accepts them:

* ``application/json`` with exactly one of ``dataframe_split`` (``columns``, ``data``,
  optional ``index``), ``dataframe_records`` (a list of objects), ``instances`` (a list of
  objects, arrays or scalars) or ``inputs`` (the same, or an object of columns); a ``params``
  key is accepted and ignored, as MLflow ignores params a model does not declare;
* ``text/csv`` with a header row.

Decoding happens in two steps because the route (hence the model and its schema) may depend
on a routing key inside the body: :func:`decode` reads the body once, then
:meth:`Payload.to_input` checks it against the chosen model's schema. Errors are
:class:`~lakeloom.deployment.schema.RequestError` with a message that never quotes the payload.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import orjson

from lakeloom.deployment.schema import (
    BadValue,
    InputSchema,
    RequestError,
    bad_value,
    convert_csv_value,
    infer_types,
    json_kind,
)

__all__ = [
    "FORMAT_KEYS",
    "Payload",
    "ScoringInput",
    "decode",
    "error_body",
    "predictions_body",
]

FORMAT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_SPLIT_KEYS = frozenset({"columns", "data", "index"})
_JSON = "application/json"
_CSV = "text/csv"


@dataclass(slots=True)
class ScoringInput:
    """Checked rows, ready for a model: values in ``columns`` order, of ``types``."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    #: The rows as one float64 matrix, when every column is a double and the model scores
    #: matrices: built once by the micro-batcher, reused by the inference table.
    matrix: Any = None


@dataclass(slots=True)
class Payload:
    """A decoded body: its layout, its data, and the routing key it carried (if any)."""

    layout: str  # "split" | "records" | "list" | "columnar" | "csv"
    data: Any
    columns: list[str] | None = None
    routing_key: str | None = None

    def to_input(self, schema: InputSchema | None, max_rows: int) -> ScoringInput:
        """Check the payload against ``schema`` (None: infer the types from the values)."""
        n = len(self.data)
        if n > max_rows:
            raise RequestError(
                413, f"the request has {n} rows; this endpoint takes at most {max_rows}"
            )
        if self.layout == "split":
            return _rows_input(self.columns, self.data, schema)
        if self.layout == "records":
            return _records_input(self.data, schema)
        if self.layout == "list":
            return _list_input(self.data, schema)
        if self.layout == "columnar":
            return _rows_input(self.columns, self.data, schema)
        return _csv_input(self.columns or [], self.data, schema)


def _rows_input(
    columns: list[str] | None, data: list[Any], schema: InputSchema | None
) -> ScoringInput:
    if schema is not None:
        if columns is None:
            plan = (tuple(range(len(schema.names))), len(schema.names))
        else:
            plan = schema.plan(tuple(columns))
        return ScoringInput(schema.names, schema.types, schema.convert_rows(data, plan))
    width = len(columns) if columns is not None else (len(data[0]) if data else 0)
    rows = []
    for r, row in enumerate(data):
        if type(row) is not list:
            raise RequestError(400, f"row {r} is {json_kind(row)}, not an array of values")
        if len(row) != width:
            raise RequestError(400, f"row {r} has {len(row)} values but there are {width} columns")
        rows.append(tuple(row))
    names = tuple(columns) if columns is not None else tuple(str(i) for i in range(width))
    if len(set(names)) != len(names):
        raise RequestError(400, "the request names a column twice")
    return ScoringInput(names, infer_types(names, rows), rows)


def _records_input(records: list[Any], schema: InputSchema | None) -> ScoringInput:
    if schema is not None:
        return ScoringInput(schema.names, schema.types, schema.convert_records(records))
    names: dict[str, None] = {}
    for r, rec in enumerate(records):
        if type(rec) is not dict:
            raise RequestError(400, f"record {r} is {json_kind(rec)}, not an object")
        names.update(dict.fromkeys(rec))
    cols = tuple(names)
    rows = [tuple(rec.get(c) for c in cols) for rec in records]
    return ScoringInput(cols, infer_types(cols, rows), rows)


def _list_input(items: list[Any], schema: InputSchema | None) -> ScoringInput:
    if not items:
        return _rows_input(None if schema is None else list(schema.names), [], schema)
    first = items[0]
    if type(first) is dict:
        return _records_input(items, schema)
    if type(first) is list:
        return _rows_input(None, items, schema)
    # A list of scalars: one column.
    if schema is not None and len(schema.names) != 1:
        raise RequestError(
            400,
            f"a list of single values fits a model with one input column; this model takes "
            f"{len(schema.names)}: send objects (column: value) or arrays of values",
        )
    return _rows_input(None if schema is None else list(schema.names), [[v] for v in items], schema)


def _csv_input(
    header: list[str], cells: list[list[str]], schema: InputSchema | None
) -> ScoringInput:
    width = len(header)
    for r, row in enumerate(cells):
        if len(row) != width:
            raise RequestError(400, f"row {r} has {len(row)} values but the header names {width}")
    if schema is not None:
        positions, _ = schema.plan(tuple(header))
        rows = []
        for r, row in enumerate(cells):
            values: list[Any] = []
            for spec, p in zip(schema.columns, positions, strict=True):
                if p < 0:
                    values.append(None)
                    continue
                try:
                    values.append(convert_csv_value(row[p], spec.type))
                except BadValue as exc:
                    raise bad_value(r, spec.name, spec.type, exc.kind) from None
            rows.append(tuple(values))
        return ScoringInput(schema.names, schema.types, rows)
    if len(set(header)) != len(header):
        raise RequestError(400, "the CSV header names a column twice")
    types = []
    columns: list[list[Any]] = []
    for i in range(width):
        texts = [row[i] for row in cells]
        kind, values = _infer_csv_column(texts)
        types.append(kind)
        columns.append(values)
    rows = list(zip(*columns, strict=True)) if columns else [() for _ in cells]
    return ScoringInput(tuple(header), tuple(types), rows)


def _infer_csv_column(texts: list[str]) -> tuple[str, list[Any]]:
    for kind, parse in (("long", int), ("double", float)):
        try:
            values: list[Any] = [
                parse(t) if t != "" else (math.nan if kind == "double" else None) for t in texts
            ]
        except ValueError:
            continue
        if kind == "long" and None in values:
            continue
        return kind, values
    return "string", list(texts)


#: Content-Type header values already checked (clients repeat theirs), to their MIME type.
_KNOWN_TYPES: dict[str, str] = {}


def _content_type(content_type: str | None) -> str:
    known = _KNOWN_TYPES.get(content_type) if content_type else None
    if known is not None:
        return known
    mime = _check_content_type(content_type)
    if len(_KNOWN_TYPES) < 64 and content_type:
        _KNOWN_TYPES[content_type] = mime
    return mime


def _check_content_type(content_type: str | None) -> str:
    if not content_type:
        raise RequestError(
            415,
            "missing Content-Type: send application/json or text/csv",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    if mime not in (_JSON, _CSV):
        raise RequestError(
            415,
            "unsupported Content-Type: send application/json or text/csv",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    for part in params.split(";"):
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        if key != "charset" or value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise RequestError(
                415, "only the charset=utf-8 parameter is supported", "UNSUPPORTED_MEDIA_TYPE"
            )
    return mime


def decode(body: bytes, content_type: str | None, key_field: str) -> Payload:
    """Read a request body; raises :class:`RequestError` (415, 400) for what cannot be read."""
    mime = _content_type(content_type)
    if mime == _CSV:
        return _decode_csv(body)
    try:
        doc = _parse_json(body)
    except RecursionError:
        raise RequestError(400, "the JSON body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            400, f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not valid UTF-8") from None
    except ValueError:  # e.g. an integer with more digits than Python converts
        raise RequestError(400, "the JSON body holds a number that cannot be read") from None
    if type(doc) is not dict:
        raise RequestError(
            400, f"the JSON body must be an object with one of {', '.join(FORMAT_KEYS)}"
        )
    found = [k for k in FORMAT_KEYS if k in doc]
    if len(found) != 1:
        detail = "none" if not found else " and ".join(found)
        raise RequestError(
            400, f"the JSON body needs exactly one of {', '.join(FORMAT_KEYS)} (found {detail})"
        )
    key = found[0]
    routing_key = doc.get(key_field)
    if routing_key is not None and type(routing_key) is not str:
        routing_key = json.dumps(routing_key, sort_keys=True) if _scalar(routing_key) else None
        if routing_key is None:
            raise RequestError(400, f"{key_field!r} must be a string or a number")
    value = doc[key]
    if key == "dataframe_split":
        return _decode_split(value, routing_key)
    if key == "dataframe_records":
        if type(value) is not list:
            raise RequestError(
                400, f"dataframe_records must be a list of objects, got {json_kind(value)}"
            )
        return Payload("records", value, routing_key=routing_key)
    if type(value) is list:
        return Payload("list", value, routing_key=routing_key)
    if key == "inputs" and type(value) is dict:
        return _decode_columnar(value, routing_key)
    raise RequestError(400, f"{key} must be a list (or, for inputs, an object of columns)")


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decode_split(value: Any, routing_key: str | None) -> Payload:
    if type(value) is not dict:
        raise RequestError(400, f"dataframe_split must be an object, got {json_kind(value)}")
    if "data" not in value or not _SPLIT_KEYS.issuperset(value):
        raise RequestError(
            400, "dataframe_split needs 'data' and may have 'columns' and 'index', nothing else"
        )
    data = value["data"]
    if type(data) is not list:
        raise RequestError(400, f"dataframe_split.data must be an array, got {json_kind(data)}")
    columns = value.get("columns")
    if columns is not None and (type(columns) is not list or not _all_strings(columns)):
        raise RequestError(400, "dataframe_split.columns must be an array of strings")
    return Payload("split", data, columns, routing_key)


def _all_strings(values: list[Any]) -> bool:
    return not values or set(map(type, values)) == {str}


def _decode_columnar(value: dict[str, Any], routing_key: str | None) -> Payload:
    columns = list(value)
    lists = [v if type(v) is list else None for v in value.values()]
    if all(v is None for v in lists):  # one row given as column: value
        return Payload("columnar", [list(value.values())], columns, routing_key)
    lengths = {len(v) if v is not None else -1 for v in lists}
    if len(lengths) != 1 or -1 in lengths:
        raise RequestError(400, "the columns of inputs must all be arrays of the same length")
    rows = [list(r) for r in zip(*lists, strict=True)] if lists else []  # type: ignore[arg-type]
    return Payload("columnar", rows, columns, routing_key)


def _decode_csv(body: bytes) -> Payload:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "the CSV body is not valid UTF-8") from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(reader, None)
        cells = [row for row in reader if row]
    except csv.Error as exc:
        raise RequestError(400, f"the CSV body cannot be read: {exc}") from None
    if not header:
        raise RequestError(400, "the CSV body needs a header row naming the columns")
    return Payload("csv", cells, [h.strip() for h in header])


def _parse_json(body: bytes) -> Any:
    """The JSON document in ``body``: orjson's parser, Python's for what orjson refuses.

    orjson reads a 100-row request about 3.5x faster. What it refuses (a byte-order mark,
    ``NaN`` and ``Infinity``, lone surrogates, invalid JSON) goes to the standard library,
    which accepts what Python's ``json`` accepts, as MLflow's server does, and words the
    error when it is one. An integer over 64 bits is read as its nearest double (a double
    column gets the same value as from an exact integer; a long column refuses both).
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _DECODER.decode(body.decode("utf-8-sig"))


def predictions_body(predictions: list[Any]) -> bytes:
    """MLflow's response body: ``{"predictions": [...]}``.

    Written by orjson (a non-finite float is ``null``, as JSON has no NaN); what orjson
    cannot write (e.g. integers over 64 bits) goes to Python's encoder.
    """
    doc = {"predictions": predictions}
    try:
        return orjson.dumps(doc, default=_default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _ENCODER.encode(doc).encode()


def error_body(error: RequestError) -> bytes:
    """MLflow's error body: ``{"error_code": ..., "message": ...}``."""
    return json.dumps({"error_code": error.error_code, "message": error.message}).encode()


def _default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)


_DECODER = json.JSONDecoder()
_ENCODER = json.JSONEncoder(default=_default)
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
