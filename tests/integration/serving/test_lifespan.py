"""What a worker's start-up and shutdown do beyond the background loops (tested where they are)."""

from __future__ import annotations

import gc

import pytest
from litestar import Litestar

from service.authz.sync import FactSync


async def test_a_running_worker_keeps_its_start_up_objects_out_of_the_collector(app: Litestar) -> None:
    """The mirrored facts live as long as the worker: full collections do not walk them, and shutdown lets go."""
    assert gc.get_freeze_count() == 0
    async with app.lifespan():
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # paused while the facts load, and on again
    assert gc.get_freeze_count() == 0


async def test_start_up_collects_nothing_while_the_facts_load(app: Litestar, monkeypatch: pytest.MonkeyPatch) -> None:
    """Collected as they grow, the facts cost a full collection after every quarter more: none until they are in."""
    collections: list[int] = []
    during_load: list[int] = []

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    load_all = FactSync.load_all

    async def load_and_allocate(self: FactSync) -> None:
        before = len(collections)
        await load_all(self)
        garbage = [[] for _ in range(10 * gc.get_threshold()[0])]  # enough young objects for a collection
        del garbage
        during_load.append(len(collections) - before)

    monkeypatch.setattr(FactSync, "load_all", load_and_allocate)
    gc.callbacks.append(counted)
    try:
        async with app.lifespan():
            assert during_load == [0]
            assert gc.isenabled()
    finally:
        gc.callbacks.remove(counted)
