"""The inference table ``lakeloom.inference_<endpoint>``: every scored row, written off the loop.

One row per scored input row (a failed request is one row). Columns:

============== ===================================================================
request_id     the request's id (also the ``X-Request-ID`` response header)
row            the row's position in its request (null for a failed request)
time           when the request arrived (UTC, microseconds)
endpoint       the endpoint's name
route          the route that answered (``shadow`` for the shadow model's rows)
model_name     registered model name
model_version  registered model version
status         the HTTP status of the response
latency_ms     the request's latency in the server, in milliseconds
request        the request body as the client sent it (JSON, or CSV), on the first row
               of each request (``row`` 0 or null), null on its other rows
response       the row's prediction as JSON (a failed request: the error body)
prediction     the prediction as a number, when it is one
<features>     one typed column per input column of the model, the values the model
               scored (looked-up features included; a missing value is null; a name
               that clashes with the columns above gets the prefix ``input_``)
============== ===================================================================

The request is stored once, as received, rather than re-encoded for every row: the typed
columns hold each row already, and re-encoding them as JSON text cost the serving core
about as much as scoring (a 100-row request: ~200 us). ``request`` is what the client sent,
routing key and all; to see one row as JSON, ``to_json`` its typed columns in SQL.

The serving loop only appends a small record to a deque. A writer thread converts what
accumulated to Arrow as soon as a quarter of ``max_pending_rows`` is waiting, or every
``flush_interval`` (JSON columns are written by DuckDB, vectorised, without holding the GIL;
float inputs come from the matrix the model scored), and appends it with the lakehouse's own
``Tables.write`` once per ``flush_interval``: a commit's Delta log work grows with the
table's files, so a busy endpoint converts more often but does not commit more often. Every
``optimize_interval`` the writer compacts the table's small files with ``Tables.optimize``.
When the writer falls behind by ``max_pending_rows``, new rows are dropped and counted rather
than slowing the endpoint down.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakeloom.engines.json_rows import json_values
from lakeloom.errors import LakeloomError

if TYPE_CHECKING:
    from lakeloom.deployment.config import InferenceTableConfig
    from lakeloom.lakehouse.tables import Tables

__all__ = ["META_COLUMNS", "InferenceLogger", "LogEntry"]

log = logging.getLogger("lakeloom.deployment")

META_COLUMNS = (
    "request_id",
    "row",
    "time",
    "endpoint",
    "route",
    "model_name",
    "model_version",
    "status",
    "latency_ms",
    "request",
    "response",
    "prediction",
)

#: Rows converted per call in the writer (each call holds the GIL: keep it short).
_ROWS_PER_SLICE = 2048

_ARROW_TYPES: dict[str, pa.DataType] = {
    "double": pa.float64(),
    "float": pa.float32(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "datetime": pa.timestamp("us"),
    "binary": pa.binary(),
}


@dataclass(slots=True)
class LogEntry:
    """One request (or shadow scoring) to log; built on the event loop, cheaply."""

    request_id: str
    time: float
    route: str
    model_name: str | None
    model_version: int | None
    status: int
    latency_ms: float
    columns: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    rows: list[tuple[Any, ...]] | None = None
    predictions: list[Any] | None = None
    #: The response body of a failed request.
    error: bytes | None = None
    #: The request body as received (None: not read, e.g. a body over the size limit).
    body: bytes | None = None
    #: ``rows`` as the float64 matrix the model scored, when there is one (all doubles).
    matrix: Any = None


class InferenceLogger:
    """Buffers :class:`LogEntry` records and appends them to the inference table."""

    def __init__(
        self, tables: Tables, table: str, endpoint: str, config: InferenceTableConfig
    ) -> None:
        self.tables = tables
        self.table = table
        self.endpoint = endpoint
        self.config = config
        self._pending: collections.deque[LogEntry] = collections.deque()
        self._queued_rows = 0  # written by the loop thread only
        self._taken_rows = 0  # written by the writer thread only
        self.rows_written = 0
        self.rows_dropped = 0
        self.write_errors = 0
        self.optimizations = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        #: Pending rows that wake the writer to convert them before its interval is up.
        self._early = max(1, config.max_pending_rows // 4)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_optimize = time.monotonic()
        # Converted to Arrow, not yet committed (the writer thread's, under the lock).
        self._lock = threading.Lock()
        self._staged: list[pa.Table] = []
        self._last_commit = time.monotonic()

    # -- the loop side ------------------------------------------------------------------
    def log(self, entry: LogEntry) -> None:
        """Queue one entry (never blocks; drops it when the writer is too far behind)."""
        n = len(entry.rows) if entry.rows else 1
        if self._queued_rows - self._taken_rows + n > self.config.max_pending_rows:
            self.rows_dropped += n
            return
        self._queued_rows += n
        self._pending.append(entry)
        if self._queued_rows - self._taken_rows >= self._early and not self._wake.is_set():
            self._wake.set()  # a busy endpoint: write now rather than at the next interval

    # -- the writer ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(
            target=self._run, name=f"lakeloom-inference-log-{self.endpoint}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is pending and stop the writer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def flush(self) -> int:
        """Write everything pending now (from any thread); returns the rows written."""
        with self._lock:
            self._stage()
            return self._commit()

    def _stage(self) -> None:
        """Convert the pending entries to Arrow: compact, and off the loop's queue."""
        entries = []
        while self._pending:
            entries.append(self._pending.popleft())
        if not entries:
            return
        self._taken_rows += sum(len(e.rows) if e.rows else 1 for e in entries)
        try:
            table = build_table(entries, self.endpoint)
        except Exception as exc:
            self._failed(exc, len(entries))
            return
        self._staged.append(table)

    def _commit(self) -> int:
        """Append what is staged to the table in one commit; returns the rows written."""
        self._last_commit = time.monotonic()
        staged, self._staged = self._staged, []
        if not staged:
            return 0
        try:
            parts = [pa.concat_tables(staged, promote_options="permissive")]
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # inputs whose types clash: one by one
            parts = staged
        written = 0
        for table in parts:
            try:
                self._write(table)
            except Exception as exc:
                self._failed(exc, table.num_rows)
                continue
            written += table.num_rows
        self.rows_written += written
        return written

    @property
    def _staged_rows(self) -> int:
        """Rows converted to Arrow and not yet committed."""
        return sum(t.num_rows for t in self._staged)

    def _failed(self, exc: Exception, count: int) -> None:
        self.write_errors += 1
        self.last_error = (
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        )
        log.warning("cannot write %d rows to %s: %s", count, self.table, self.last_error)

    def optimize(self) -> None:
        """Compact the table's small files (errors are logged, not raised)."""
        self._last_optimize = time.monotonic()
        try:
            if self.tables.exists(self.table):
                self.tables.optimize(self.table)
                self.optimizations += 1
        except Exception as exc:
            log.warning("cannot optimize %s: %s", self.table, exc)

    def _write(self, table: pa.Table) -> None:
        try:
            self.tables.write(self.table, table, mode="append", schema_mode="merge", system=True)
        except LakeloomError as exc:
            # A feature column whose type clashes with the table's: keep the row, drop the column.
            keep = [c for c in table.column_names if c in META_COLUMNS]
            if len(keep) == table.num_columns:
                raise
            log.warning("%s: writing without typed input columns (%s)", self.table, exc)
            self.tables.write(
                self.table, table.select(keep), mode="append", schema_mode="merge", system=True
            )

    def _run(self) -> None:
        interval = self.config.flush_interval_s
        optimize_every = self.config.optimize_interval_s
        while not self._stop.is_set():
            self._wake.wait(max(0.0, interval - (time.monotonic() - self._last_commit)))
            if not self._stop.is_set():
                self._wake.clear()
            with self._lock:
                self._stage()
                # One commit per interval: each commit costs the Delta log work, which grows
                # with the table's files, so a busy endpoint stages rows but commits no more.
                due = time.monotonic() - self._last_commit >= interval
                if due or self._staged_rows >= self.config.max_pending_rows:
                    self._commit()
            if optimize_every > 0 and time.monotonic() - self._last_optimize >= optimize_every:
                self.optimize()
        self.flush()

    def status(self) -> dict[str, Any]:
        """Counters for ``/ready`` and ``/metrics``."""
        return {
            "table": self.table,
            "rows_written": self.rows_written,
            "rows_dropped": self.rows_dropped,
            "rows_pending": self._queued_rows - self._taken_rows,
            "write_errors": self.write_errors,
            "optimizations": self.optimizations,
            "last_error": self.last_error,
        }


def _prediction_array(predictions: list[Any]) -> pa.Array | None:
    """Predictions of one scalar JSON type as an Arrow array (None: mixed or nested)."""
    kinds = {type(p) for p in predictions} - {type(None)}
    if not kinds:
        return pa.array(predictions, pa.float64())
    if kinds == {bool}:
        return pa.array(predictions, pa.bool_())
    if kinds == {str}:
        return pa.array(predictions, pa.string())
    if kinds <= {int, float}:
        try:
            return pa.array(predictions, pa.int64() if kinds == {int} else pa.float64())
        except (pa.ArrowInvalid, OverflowError):
            return pa.array([None if p is None else float(p) for p in predictions], pa.float64())
    return None


def build_table(entries: list[LogEntry], endpoint: str) -> pa.Table:
    """The Arrow table of ``entries``: meta columns, typed inputs, JSON request/response.

    Entries are grouped by their columns (one group unless routes take different inputs);
    each group becomes a table with column-wise work only, and the groups are concatenated.
    """
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[LogEntry]] = {}
    failed: list[LogEntry] = []
    for e in entries:
        if e.rows:
            groups.setdefault((e.columns, e.types), []).append(e)
        else:
            failed.append(e)
    tables = [_scored_table(g, cols, types, endpoint) for (cols, types), g in groups.items()]
    if failed:
        tables.append(_failed_table(failed, endpoint))
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def _meta(entries: list[LogEntry], endpoint: str) -> dict[str, pa.Array]:
    """One value per entry of each meta column."""
    return {
        "request_id": pa.array([e.request_id for e in entries], pa.string()),
        "time": pa.array([int(e.time * 1_000_000) for e in entries], pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
        "endpoint": pa.array([endpoint] * len(entries), pa.string()),
        "route": pa.array([e.route for e in entries], pa.string()),
        "model_name": pa.array([e.model_name for e in entries], pa.string()),
        "model_version": pa.array([e.model_version for e in entries], pa.int64()),
        "status": pa.array([e.status for e in entries], pa.int32()),
        "latency_ms": pa.array([e.latency_ms for e in entries], pa.float64()),
    }


def _ordered(meta: dict[str, pa.Array], rest: dict[str, pa.Array]) -> pa.Table:
    columns = {name: meta[name] for name in META_COLUMNS if name in meta}
    return pa.table({**columns, **rest})


def _bodies(entries: list[LogEntry]) -> pa.Array:
    """The request bodies as text (bytes that are not UTF-8 replaced)."""
    try:  # scored bodies were read as UTF-8 already: the cast only checks
        return pa.array([e.body for e in entries], pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [e.body.decode("utf-8", "replace") if e.body is not None else None for e in entries],
            pa.string(),
        )


def _failed_table(entries: list[LogEntry], endpoint: str) -> pa.Table:
    meta = _meta(entries, endpoint)
    n = len(entries)
    meta["row"] = pa.nulls(n, pa.int32())
    meta["request"] = _bodies(entries)
    meta["response"] = pa.array(
        [e.error.decode("utf-8", "replace") if e.error else None for e in entries], pa.string()
    )
    meta["prediction"] = pa.nulls(n, pa.float64())
    return _ordered(meta, {})


def _scored_table(
    entries: list[LogEntry],
    columns: tuple[str, ...],
    types: tuple[str, ...],
    endpoint: str,
) -> pa.Table:
    import numpy as np

    counts = np.fromiter((len(e.rows or ()) for e in entries), dtype=np.int64, count=len(entries))
    total = int(counts.sum())
    meta = _meta(entries, endpoint)
    bodies = _bodies(entries)
    if total != len(entries):  # some requests have several rows: repeat their meta values
        entry = np.repeat(np.arange(len(entries)), counts)
        meta = {name: arr.take(pa.array(entry)) for name, arr in meta.items()}
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        row = np.arange(total) - starts
        meta["row"] = pa.array(row.astype(np.int32))
        meta["request"] = bodies.take(pa.array(entry, mask=row != 0))
        predictions = [p for e in entries for p in (e.predictions or ())]
    else:
        meta["row"] = pa.array(np.zeros(total, dtype=np.int32))
        meta["request"] = bodies
        predictions = [e.predictions[0] if e.predictions else None for e in entries]
    typed: dict[str, pa.Array] = {}
    arrays = _matrix_columns(entries, types)
    if arrays is None:
        rows = [r for e in entries for r in (e.rows or ())]
        arrays = _float_columns(rows, types)
        if arrays is None:
            arrays = [
                _typed(list(values), kind)
                for kind, values in zip(types, zip(*rows, strict=True), strict=True)
            ]
    for name, array in zip(columns, arrays, strict=True):
        column = "input_" + name if name in META_COLUMNS else name
        typed[column] = array
    response, numbers = _response_columns(predictions)
    meta["response"] = response
    meta["prediction"] = numbers
    return _ordered(meta, typed)


def _matrix_columns(entries: list[LogEntry], types: tuple[str, ...]) -> list[pa.Array] | None:
    """The typed columns from the matrices the model scored (None: some entry has none)."""
    if not entries or any(e.matrix is None for e in entries):
        return None
    import numpy as np

    matrices = [e.matrix for e in entries]
    whole = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
    if whole.ndim != 2 or whole.shape[1] != len(types):
        return None
    return _arrow_columns(np.ascontiguousarray(whole.T), types)


def _arrow_columns(columns: Any, types: tuple[str, ...]) -> list[pa.Array]:
    """Rows of a float matrix, transposed (one row per column), as Arrow columns."""
    # A missing value reached the model as NaN; the table records it as a null.
    return [
        pa.array(columns[i], pa.float64() if kind == "double" else pa.float32(), from_pandas=True)
        for i, kind in enumerate(types)
    ]


def _float_columns(rows: list[tuple[Any, ...]], types: tuple[str, ...]) -> list[pa.Array] | None:
    """All-float rows as Arrow columns through one numpy matrix (None: other types).

    The schema check made every value of a float column a float (a null is NaN), so one C
    call converts the rows, where a transposition and a list per column take ~10x longer.
    """
    if not rows or not all(t in ("double", "float") for t in types):
        return None
    import numpy as np

    parts = []
    try:
        # In slices: one conversion holds the GIL throughout, and the serving loop waits.
        for start in range(0, len(rows), _ROWS_PER_SLICE):
            part = np.array(rows[start : start + _ROWS_PER_SLICE], dtype=np.float64)
            if part.ndim != 2 or part.shape[1] != len(types):
                return None
            parts.append(part)
    except (TypeError, ValueError):
        return None
    return _arrow_columns(np.ascontiguousarray(np.concatenate(parts).T), types)


def _typed(values: list[Any], kind: str) -> pa.Array:
    try:
        if kind == "datetime":
            return pa.array(values, pa.string()).cast(pa.timestamp("us"))
        # A missing float reached the model as NaN; the table records it as a null.
        return pa.array(values, _ARROW_TYPES.get(kind, pa.string()), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _response_columns(predictions: list[Any]) -> tuple[pa.Array, pa.Array]:
    """Each prediction as JSON text, and as a number where it is one.

    Written by DuckDB's JSON writer (:mod:`lakeloom.engines.json_rows`), without the GIL;
    NaN and infinities become JSON nulls.
    """
    n = len(predictions)
    preds = _prediction_array(predictions)
    if preds is None:
        response = pa.array([json.dumps(p, default=_plain) for p in predictions], pa.string())
        return response, pa.nulls(n, pa.float64())
    numeric = pa.types.is_integer(preds.type) or pa.types.is_floating(preds.type)
    return json_values(preds), preds.cast(pa.float64()) if numeric else pa.nulls(n, pa.float64())


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else str(value)
