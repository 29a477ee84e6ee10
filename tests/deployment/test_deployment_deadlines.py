"""Per-request timeouts swept by one timer."""

from __future__ import annotations

import asyncio

import pytest

from lakeloom.deployment.deadlines import Deadlines


def test_late_requests_fail_and_answered_ones_leave_the_queue() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop, tick=0.01)
        deadlines.start()
        slow, fast = loop.create_future(), loop.create_future()
        deadlines.add(slow, 0.05)
        deadlines.add(fast, 0.05)
        fast.set_result("ok")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow, 1.0)
        await asyncio.sleep(0.03)
        assert len(deadlines) == 0 and fast.result() == "ok"
        # Answered before the deadline: never failed.
        answered = loop.create_future()
        deadlines.add(answered, 0.02)
        answered.set_result(1)
        await asyncio.sleep(0.05)
        assert answered.result() == 1
        deadlines.stop()

    asyncio.run(main())


def test_a_stopped_sweeper_fails_nothing() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop, tick=0.01)
        deadlines.start()
        deadlines.stop()
        waiting = loop.create_future()
        deadlines.add(waiting, 0.0)
        await asyncio.sleep(0.05)
        assert not waiting.done()

    asyncio.run(main())
