"""A second worker over the same database (worker B), and waiting for it to catch up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient
from litestar import Litestar

from service.app import create_app
from service.runtime import Runtime
from tests.support.app import http_client, make_settings, running
from tests.support.pats import check
from tests.support.world import World

DEADLINE = 1.0


async def within_deadline(condition: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until ``condition`` holds; fails past the deadline."""
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < DEADLINE, "change not honoured by the other worker within 1 s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@dataclass
class WorkerB:
    client: AsyncClient
    runtime: Runtime
    lookups: list[str]
    """Token hashes B looked up in the database."""

    async def holds_a_long_lived_entry(self, token: str, world: World) -> None:
        """B admits ``token`` from its cache for longer than a poll interval, without looking it up again."""
        for _ in range(2):  # a token created by another worker moments ago is dropped once by B's next poll
            assert (await check(self.client, token, "PROJECT.UPDATE", "project", world.project)).status_code == 200
            await asyncio.sleep(0.7)
        looked_up = len(self.lookups)
        await asyncio.sleep(0.7)
        assert (await check(self.client, token, "PROJECT.UPDATE", "project", world.project)).status_code == 200
        assert len(self.lookups) == looked_up, "B looked the token up again although nothing changed"


@asynccontextmanager
async def worker(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, listens: bool, **overrides: str
) -> AsyncIterator[WorkerB]:
    app: Litestar = create_app(make_settings(database_url, tmp_path, **overrides))
    runtime: Runtime = app.state.runtime
    lookups: list[str] = []
    load = runtime.verifier._load

    async def counting_load(kind: Any, token_hash: str, now: float, client: str | None) -> Any:
        lookups.append(token_hash)
        return await load(kind, token_hash, now, client)

    monkeypatch.setattr(runtime.verifier, "_load", counting_load)
    if not listens:  # as behind a pooler that cannot LISTEN: notifications never reach B

        async def cannot_listen() -> None:
            pass

        monkeypatch.setattr(runtime.broadcast, "listen", cannot_listen)
    async with running(app), http_client(app) as client:
        yield WorkerB(client, runtime, lookups)
    await runtime.alchemy.get_engine().dispose()
