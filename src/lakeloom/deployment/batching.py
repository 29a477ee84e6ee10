"""Micro-batching: concurrent requests to one model scored by one predict call, off the loop.

Each :class:`MicroBatcher` owns a worker thread. The event loop puts a request's checked rows
on a queue and awaits a future; the worker takes everything queued (up to
``max_batch_size`` rows; a request is never split), scores it with one ``predict`` call,
and hands the results back to the loop in one callback. While the worker predicts, new
requests queue up, so batches grow with the load by themselves; ``max_wait_s`` optionally
holds a lone first row back for company when the worker is idle.

A handle that offers ``predict_matrix`` scores all-double rows as one float64 matrix; the
matrix built for a batch stays with each request's rows (``ScoringInput.matrix``), so the
inference table does not convert the rows again. A handle that offers ``predict_enriched``
(a feature-aware model) also returns the rows as it scored them; each request's rows are
replaced by those, so the inference table logs what the model saw.

Rows go to the handle they were checked against (the one the slot served when the request
arrived), so a hot swap never mixes schemas. When a batch's predict call fails, its
requests are scored one by one, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lakeloom.deployment.config import BatchingConfig
from lakeloom.deployment.models import ModelHandle
from lakeloom.deployment.protocol import ScoringInput

__all__ = ["BatchStats", "MicroBatcher", "ModelFailed"]

log = logging.getLogger("lakeloom.deployment")

_STOP = object()


class ModelFailed(Exception):
    """The model raised on a request's rows (its type only: messages may quote values)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(type(exc).__name__)
        self.kind = type(exc).__name__


@dataclass(slots=True)
class _Item:
    future: asyncio.Future[tuple[ModelHandle, list[Any]]]
    handle: ModelHandle
    data: ScoringInput


@dataclass
class BatchStats:
    """Counters the worker keeps (read by ``/metrics``)."""

    batches: int = 0
    rows: int = 0
    failures: int = 0


class MicroBatcher:
    """Coalesces concurrent requests into predict calls on a worker thread."""

    def __init__(
        self,
        name: str,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch_size: int = BatchingConfig.max_batch_size,
        max_wait_s: float = 0.0,
    ) -> None:
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._loop = loop
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name=f"lakeloom-batcher-{name}", daemon=True
        )
        self._thread.start()

    def submit(
        self, handle: ModelHandle, data: ScoringInput
    ) -> asyncio.Future[tuple[ModelHandle, list[Any]]]:
        """Queue ``data`` for ``handle``; the future gets ``(handle, predictions)``."""
        future: asyncio.Future[tuple[ModelHandle, list[Any]]] = self._loop.create_future()
        self._queue.put(_Item(future, handle, data))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker after the requests already queued."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the worker ---------------------------------------------------------------------
    def _run(self) -> None:
        carry: Any = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is _STOP:
                return
            items = [first]
            rows = len(first.data.rows)
            deadline = 0.0
            stop = False
            while rows < self.max_batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    if self.max_wait_s <= 0:
                        break
                    now = time.monotonic()
                    deadline = deadline or now + self.max_wait_s
                    if now >= deadline:
                        break
                    try:
                        nxt = self._queue.get(timeout=deadline - now)
                    except queue.Empty:
                        break
                if nxt is _STOP:
                    stop = True
                    break
                if rows + len(nxt.data.rows) > self.max_batch_size:
                    carry = nxt
                    break
                items.append(nxt)
                rows += len(nxt.data.rows)
            self._score(items)
            if stop:
                return

    def _score(self, items: list[_Item]) -> None:
        live = [it for it in items if not it.future.done()]  # timed out: skip
        results: list[tuple[_Item, Any, BaseException | None]] = []
        groups: dict[tuple[int, tuple[str, ...], tuple[str, ...]], list[_Item]] = {}
        for it in live:
            key = (id(it.handle), it.data.columns, it.data.types)
            groups.setdefault(key, []).append(it)
        for group in groups.values():
            results.extend(self._score_group(group))
        if results:
            try:
                self._loop.call_soon_threadsafe(_deliver, results)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _score_group(self, group: list[_Item]) -> list[tuple[_Item, Any, BaseException | None]]:
        handle = group[0].handle
        data = group[0].data
        rows = data.rows if len(group) == 1 else [r for it in group for r in it.data.rows]
        enrich = getattr(handle, "predict_enriched", None)
        by_matrix = getattr(handle, "predict_matrix", None)
        scored: list[tuple[Any, ...]] | None = None
        matrix: np.ndarray[Any, Any] | None = None
        try:
            if enrich is not None:
                predictions, scored = enrich(data.columns, data.types, rows)
            elif by_matrix is not None and _all_double(data.types):
                matrix = np.array(rows, dtype=np.float64)
                predictions = by_matrix(data.columns, matrix)
            else:
                predictions = handle.predict(data.columns, data.types, rows)
        except Exception as exc:
            if len(group) > 1:  # find the request that fails; score the others
                out = []
                for it in group:
                    out.extend(self._score_group([it]))
                return out
            self.stats.failures += 1
            log.warning(
                "model %s version %s failed on a request: %s",
                handle.name,
                handle.version,
                type(exc).__name__,
            )
            log.debug("model failure", exc_info=True)
            return [(group[0], None, ModelFailed(exc))]
        self.stats.batches += 1
        self.stats.rows += len(rows)
        out = []
        start = 0
        for it in group:
            n = len(it.data.rows)
            if scored is not None:
                # The rows as scored (looked-up features filled in) are what gets logged;
                # the loop reads them only after this batch's results are delivered.
                it.data.rows = scored[start : start + n]
                it.data.matrix = None
            elif matrix is not None:
                it.data.matrix = matrix[start : start + n]
            out.append((it, (handle, predictions[start : start + n]), None))
            start += n
        return out


def _all_double(types: tuple[str, ...]) -> bool:
    return all(t == "double" for t in types)


def _deliver(results: list[tuple[_Item, Any, BaseException | None]]) -> None:
    for item, value, error in results:
        future = item.future
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
