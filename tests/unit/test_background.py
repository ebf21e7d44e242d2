"""Periodic background work: on time, woken early, a burst of wakes settled into one run, failures retried.

And the collector paused through a big read.
"""

from __future__ import annotations

import asyncio
import gc

from service.background import Periodic, collector_paused

PATIENCE = 5.0  # seconds a test waits for a run that is due (a loaded machine may be slow to get there)


class Work:
    """Work that counts its runs (failing the first ``failures``) and says when it has run ``wanted`` times."""

    def __init__(self, wanted: int = 1, failures: int = 0) -> None:
        self.runs: list[float] = []
        self.wanted, self.failures = wanted, failures
        self.done = asyncio.Event()

    async def __call__(self) -> None:
        self.runs.append(asyncio.get_running_loop().time())
        if len(self.runs) >= self.wanted:
            self.done.set()
        if len(self.runs) <= self.failures:
            raise RuntimeError("this run fails")


async def _run_until_done(periodic: Periodic, work: Work) -> None:
    """Start ``periodic``, wait until ``work`` has run as often as it wants, stop."""
    periodic.start()
    try:
        async with asyncio.timeout(PATIENCE):
            await work.done.wait()
    finally:
        await periodic.stop()


async def test_a_burst_of_wakes_costs_one_run_after_the_settle_time() -> None:
    work = Work()
    periodic = Periodic("test", 60.0, work, settle=0.5)
    periodic.start()
    try:
        await asyncio.sleep(0)
        woken_at = asyncio.get_running_loop().time()
        for _ in range(20):  # about 20 ms of wakes, well within the settle time
            periodic.wake()
            await asyncio.sleep(0.001)
        async with asyncio.timeout(PATIENCE):
            await work.done.wait()
        await asyncio.sleep(0.2)
    finally:
        await periodic.stop()
    assert len(work.runs) == 1
    assert work.runs[0] - woken_at >= 0.5


async def test_without_settle_a_wake_runs_long_before_the_interval() -> None:
    work = Work()
    periodic = Periodic("test", 60.0, work)
    periodic.start()
    try:
        periodic.wake()
        async with asyncio.timeout(PATIENCE):
            await work.done.wait()
    finally:
        await periodic.stop()


async def test_unwoken_work_runs_every_interval() -> None:
    work = Work(wanted=3)
    periodic = Periodic("test", 0.02, work, settle=60.0)  # the settle time is for wakes only
    await _run_until_done(periodic, work)


async def test_a_failing_run_is_counted_and_retried() -> None:
    work = Work(wanted=2, failures=1)
    periodic = Periodic("test", 0.02, work)
    periodic.start()
    try:
        async with asyncio.timeout(PATIENCE):
            await work.done.wait()
        await asyncio.sleep(0)  # the second run's outcome is recorded
    finally:
        await periodic.stop()
    assert len(work.runs) >= 2
    assert not periodic.failing


async def test_runs_start_an_interval_apart_however_long_each_takes() -> None:
    class Slow(Work):
        async def __call__(self) -> None:
            await super().__call__()
            await asyncio.sleep(0.15)  # most of the interval

    work = Slow(wanted=4)
    periodic = Periodic("test", 0.2, work)
    await _run_until_done(periodic, work)
    gaps = [later - earlier for earlier, later in zip(work.runs, work.runs[1:], strict=False)]
    assert sum(gaps) / len(gaps) < 0.3  # an interval after the last start, not after its end (0.35)


async def test_a_run_that_overran_its_interval_is_followed_at_once() -> None:
    class Slower(Work):
        async def __call__(self) -> None:
            await super().__call__()
            if len(self.runs) == 1:
                await asyncio.sleep(0.3)

    work = Slower(wanted=2)
    periodic = Periodic("test", 0.1, work)
    await _run_until_done(periodic, work)
    assert work.runs[1] - work.runs[0] < 0.3 + 0.1


async def test_woken_runs_do_the_woken_work_and_never_postpone_the_scheduled_one() -> None:
    scheduled, woken = Work(wanted=3), Work()
    periodic = Periodic("test", 0.2, scheduled, woken_work=woken)
    periodic.start()
    try:
        async with asyncio.timeout(PATIENCE):
            while not scheduled.done.is_set():  # a wake every 20 ms: always one pending
                periodic.wake()
                await asyncio.sleep(0.02)
    finally:
        await periodic.stop()
    assert len(woken.runs) > len(scheduled.runs)
    gaps = [later - earlier for earlier, later in zip(scheduled.runs, scheduled.runs[1:], strict=False)]
    assert max(gaps) < 0.2 + 0.1  # on schedule, however many wakes came between


def test_the_collector_stays_paused_through_a_big_read_and_as_it_was_after() -> None:
    runs: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.callbacks.append(note)
    try:
        with collector_paused():
            rows = [[n] for n in range(100_000)]  # tracked objects: collections would start many times
            assert not gc.isenabled()
            del rows  # freed by refcount, as the read's rows are
        assert gc.isenabled() and runs == []
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
        gc.callbacks.remove(note)
