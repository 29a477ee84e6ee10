"""The local engine's ``map_batches``: a bounded, ordered pipeline of Arrow batches.

Three stages overlap: a reader thread pulls input batches (Parquet decoding releases the
GIL), a worker thread applies the function (model libraries release it too), and the
consumer (usually delta-rs writing Parquet) reads the results. Queues of ``PREFETCH``
batches bound the memory in flight; order is kept. An error in any stage reaches the
consumer as it was raised; a consumer that stops early stops both threads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from lakeloom.engines.arrow_input import to_arrow_input
from lakeloom.engines.base import BatchFn
from lakeloom.errors import SchemaMismatch

__all__ = ["BATCH_ROWS", "PREFETCH", "conform_batch", "map_batches", "plain_types"]

#: Rows per batch given to the function (input batches are split to at most this).
BATCH_ROWS = 131_072
#: Batches each queue holds: the input read ahead, and results not yet consumed.
PREFETCH = 2

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def plain_types(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with large strings and binaries as plain ones (what Delta tables hold).

    pandas and Spark hand over large strings; functions see the same types on every engine.
    """
    large = (pa.types.is_large_string, pa.types.is_large_binary, pa.types.is_string_view)
    if not any(check(f.type) for f in batch.schema for check in large):
        return batch
    fields, arrays = [], []
    for f, col in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type):
            f, col = f.with_type(pa.string()), col.cast(pa.string())
        elif pa.types.is_large_binary(f.type):
            f, col = f.with_type(pa.binary()), col.cast(pa.binary())
        fields.append(f)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with ``schema`` (columns by name, in order, cast), or ``SchemaMismatch``."""
    if isinstance(batch, pa.Table):
        table = batch.combine_chunks()
        batch = pa.RecordBatch.from_arrays(
            [
                pa.concat_arrays(c.chunks) if c.num_chunks else pa.array([], c.type)
                for c in table.columns
            ],
            schema=table.schema,
        )
    if batch.schema.equals(schema):
        return batch
    missing = [n for n in schema.names if n not in batch.schema.names]
    if missing:
        raise SchemaMismatch(
            f"the batch function returned no column(s) {', '.join(map(repr, missing))}; "
            f"it returned {', '.join(batch.schema.names)}"
        )
    arrays = []
    for f in schema:
        col = batch.column(f.name)
        if not col.type.equals(f.type):
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaMismatch(
                    f"column {f.name!r} of a result batch is {col.type}, which does not cast "
                    f"to {f.type}: {exc}"
                ) from None
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _input_batches(data: Any, rows: int) -> Iterator[pa.RecordBatch]:
    arrow = to_arrow_input(data)
    source = arrow.to_batches(max_chunksize=rows) if isinstance(arrow, pa.Table) else arrow
    for batch in source:
        batch = plain_types(batch)
        if batch.num_rows <= rows:
            yield batch
            continue
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer left; False when it did."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _DONE


def map_batches(
    data: Any,
    fn: BatchFn,
    schema: pa.Schema,
    *,
    batch_rows: int = BATCH_ROWS,
    prefetch: int = PREFETCH,
) -> pa.RecordBatchReader:
    """A reader of ``fn(batch)`` for every batch of ``data`` (see :meth:`Engine.map_batches`)."""
    if batch_rows < 1 or prefetch < 1:
        raise ValueError("batch_rows and prefetch must be at least 1")
    source = _input_batches(data, batch_rows)

    def results() -> Iterator[pa.RecordBatch]:
        read: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        done: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def reader() -> None:
            try:
                for batch in source:
                    if not _put(read, batch, stop):
                        return
                _put(read, _DONE, stop)
            except BaseException as exc:
                _put(read, _Failed(exc), stop)

        def worker() -> None:
            while True:
                item = _get(read, stop)
                if item is _DONE or isinstance(item, _Failed):
                    _put(done, item, stop)
                    return
                try:
                    out = conform_batch(fn(item), schema)
                except BaseException as exc:
                    _put(done, _Failed(exc), stop)
                    return
                if not _put(done, out, stop):
                    return

        threads = [
            threading.Thread(target=reader, name="lakeloom-map-read", daemon=True),
            threading.Thread(target=worker, name="lakeloom-map-fn", daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            while True:
                item = _get(done, stop)
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    raise item.exc
                yield item
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)

    return pa.RecordBatchReader.from_batches(schema, results())
