"""Periodic background work of a worker (usage flushes, fact polling, expiry sweeps)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("tokengate.background")


class Periodic:
    """Runs ``work`` every ``interval`` seconds, or sooner when woken, until stopped.

    A failure is logged and retried next time.
    """

    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval = interval
        self.work = work
        self._task: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.interval)
            self._woken.clear()
            try:
                await self.work()
            except Exception:
                logger.exception("%s failed; retrying in %s s", self.name, self.interval)

    def wake(self) -> None:
        """Run the work now rather than at the end of the interval."""
        self._woken.set()

    def start(self) -> None:
        """Start the loop."""
        self._task = asyncio.create_task(self._run(), name=f"tokengate-{self.name}")

    async def stop(self) -> None:
        """Stop the loop (the work in progress, if any, is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
