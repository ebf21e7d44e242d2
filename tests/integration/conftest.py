"""Fixtures shared by the integration tests (the app, the world and the callers are in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.workers import WorkerB, worker
from tests.support.world import World


@pytest.fixture(name="notified_b")
async def fx_notified_b(
    database_url: str, tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WorkerB]:
    async with worker(database_url, tmp_path, monkeypatch, listens=True, TOKENGATE_SYNC_INTERVAL_SECONDS="60") as b:
        yield b
