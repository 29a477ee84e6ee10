"""Per-request timeouts with one timer for the whole endpoint.

A timer per request (``loop.call_later`` and its cancellation) costs a few microseconds,
which at tens of thousands of requests a second is a few percent of the endpoint. Requests
are instead queued in arrival order with their deadlines, and one timer sweeps the queue every
``tick``: answered requests leave it, late ones fail with :class:`TimeoutError`. A timeout is
therefore late by at most one tick. When the configured timeout shrinks while requests wait,
the newer, earlier deadlines are reached once the older ones ahead of them are.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

__all__ = ["Deadlines"]


class Deadlines:
    """Fails futures that are still pending at their deadline (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float = 0.02) -> None:
        self._loop = loop
        self.tick = tick
        self._queue: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._running = False

    def add(self, future: asyncio.Future[Any], seconds: float) -> None:
        """Fail ``future`` with ``TimeoutError`` if it is still pending ``seconds`` from now."""
        self._queue.append((self._loop.time() + seconds, future))

    def start(self) -> None:
        """Start sweeping (on the loop's thread)."""
        self._running = True
        self._timer = self._loop.call_later(self.tick, self._sweep)

    def stop(self) -> None:
        """Stop sweeping (from any thread); pending futures are left as they are."""
        self._running = False

    def __len__(self) -> int:
        return len(self._queue)

    def _sweep(self) -> None:
        if not self._running:
            return
        now = self._loop.time()
        queue = self._queue
        while queue:
            deadline, future = queue[0]
            if not future.done():
                if deadline > now:
                    break
                future.set_exception(TimeoutError())
            queue.popleft()
        self._timer = self._loop.call_later(self.tick, self._sweep)
