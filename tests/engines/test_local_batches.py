"""The local engine's batch pipeline: bounded read-ahead, order kept, early stop."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pyarrow as pa

from lakeloom.engines.local_batches import PREFETCH, map_batches

SCHEMA = pa.schema([("i", pa.int64())])


def counting_reader(batches: int, pulled: list[int]) -> pa.RecordBatchReader:
    def gen() -> Iterator[pa.RecordBatch]:
        for b in range(batches):
            pulled.append(b)
            yield pa.record_batch([pa.array([b] * 10, pa.int64())], schema=SCHEMA)

    return pa.RecordBatchReader.from_batches(SCHEMA, gen())


def test_reads_ahead_only_a_bounded_number_of_batches() -> None:
    pulled: list[int] = []
    calls = threading.Event()

    def ident(batch: pa.RecordBatch) -> pa.RecordBatch:
        calls.set()
        return batch

    reader = map_batches(counting_reader(1000, pulled), ident, SCHEMA)
    first = reader.read_next_batch()
    assert first.column(0)[0].as_py() == 0
    for _ in range(100):  # let the threads fill their queues
        threading.Event().wait(0.01)
    # queued input + the batch being computed + queued results + the one handed out
    assert len(pulled) <= 2 * PREFETCH + 3
    rest = reader.read_all()
    assert rest.num_rows == 999 * 10
    assert rest.column("i").to_pylist()[::10] == list(range(1, 1000))  # order kept
    assert calls.is_set()


def test_stopping_early_stops_the_threads() -> None:
    pulled: list[int] = []
    before = threading.active_count()
    reader = map_batches(counting_reader(1000, pulled), lambda b: b, SCHEMA)
    reader.read_next_batch()
    del reader  # a consumer that fails drops the reader: its generator closes
    gc.collect()
    for _ in range(100):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.05)
    assert threading.active_count() <= before
    assert len(pulled) < 1000


def test_large_batches_are_split() -> None:
    big = pa.table({"i": pa.array(range(25), pa.int64())})
    sizes: list[int] = []

    def record(batch: pa.RecordBatch) -> pa.RecordBatch:
        sizes.append(batch.num_rows)
        return batch

    out = map_batches(big, record, SCHEMA, batch_rows=10).read_all()
    assert sizes == [10, 10, 5]
    assert out.column("i").to_pylist() == list(range(25))
