"""Periodic background work of a worker (usage flushes, fact polling, expiry sweeps).

Also a pause of the cyclic garbage collector, for the big reads some of that work makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from service.metrics import background_failed, background_succeeded

logger = logging.getLogger("tokengate.background")


class Periodic:
    """Runs ``work`` every ``interval`` seconds, or sooner when woken, until stopped.

    Runs start ``interval`` apart, however long each takes (a run that overran starts the next at once): a poll
    whose success confirms a cache for two intervals keeps its margin on a busy worker, where each of its round trips
    waits for the event loop. A woken run waits ``settle`` seconds first, so a burst of wakes (notifications of
    changes made elsewhere, one per change) costs one run rather than one each. A failure is logged and retried next
    time.

    ``woken_work``, if given, is what a woken run does instead of ``work``: it never postpones the next scheduled run
    of ``work``, however often wakes come (a poll woken by notifications may look back less far than the full one).
    """

    def __init__(
        self,
        name: str,
        interval: float,
        work: Callable[[], Awaitable[object]],
        *,
        settle: float = 0.0,
        woken_work: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self.work = work
        self.settle = settle
        self.woken_work = woken_work
        self._task: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()
        self.failing = False
        """Whether the last run failed."""
        self.succeeded_at: float | None = None
        """``time.monotonic()`` of the last successful run."""

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), max(0.0, due - loop.time()))
            woken = self._woken.is_set()
            if woken and self.settle:
                await asyncio.sleep(self.settle)
            self._woken.clear()
            if woken and self.woken_work is not None and loop.time() < due:
                await self._run_once(self.woken_work)
                continue
            due = loop.time() + self.interval
            await self._run_once(self.work)

    async def _run_once(self, work: Callable[[], Awaitable[object]]) -> None:
        """Do the work; a failure is logged, counted and kept in ``failing``, not raised."""
        try:
            await work()
        except Exception:
            self.failing = True
            background_failed(self.name)
            logger.exception("%s failed; retrying in %s s", self.name, self.interval)
            return
        self.failing, self.succeeded_at = False, time.monotonic()
        background_succeeded(self.name)

    def wake(self) -> None:
        """Run the work now rather than at the end of the interval."""
        self._woken.set()

    def start(self) -> None:
        """Start the loop (the app has done the work once before, so it counts as just done)."""
        self.succeeded_at = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"tokengate-{self.name}")

    async def stop(self) -> None:
        """Stop the loop (the work in progress, if any, is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection in the block: for reads of every entity's uuid, short-lived and freed by refcount.

    Each of the 100,000 rows is a few tracked objects, and allocating them started a full collection several times
    (200-500 ms each under load, walking the decision memo and the caches) every time all uuids were read. (Other
    coroutines run while the block awaits the database: their cycles wait for the next collection after it.)
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
