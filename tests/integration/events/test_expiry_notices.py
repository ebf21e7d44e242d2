"""Expiry notices: ``pat_expiring`` at 7 days and 1 day before expiry, once per token, however many sweep."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from litestar import Litestar

from service.app import create_app, notify_expiring_tokens
from service.config import Settings
from service.runtime import Runtime
from tests.support.pats import PATS, create_pat, in_days
from tests.support.world import World


async def notices(client: AsyncClient, world: World) -> list[tuple[str, int]]:
    response = await client.get(
        "/api/events/", headers=world.owner_headers, params={"event_type": "pat_expiring", "page_size": 100}
    )
    events: list[dict[str, Any]] = response.json()
    return sorted((event["context"]["pat_name"], event["context"]["notice_days"]) for event in events)


async def test_each_token_gets_each_notice_once_across_two_instances(
    client: AsyncClient, world: World, runtime: Runtime, settings: Settings
) -> None:
    soon = await create_pat(client, world.owner_headers, name="soon", expires_at=in_days(30))
    await create_pat(client, world.owner_headers, name="later", expires_at=in_days(60))
    await create_pat(client, world.owner_headers, name="short", expires_at=in_days(0.5))
    gone = await create_pat(client, world.owner_headers, name="gone", expires_at=in_days(30))
    assert (await client.delete(f"{PATS}{gone['uuid']}/", headers=world.owner_headers)).status_code == 204
    other: Litestar = create_app(settings)  # a second instance on the same database
    instances = [runtime, other.state.runtime]
    start = datetime.now(UTC)

    async def sweep(days_later: float) -> None:
        """Both instances sweep twice at once, with the clock moved ``days_later`` days on."""
        at = start + timedelta(days=days_later)
        await asyncio.gather(*(notify_expiring_tokens(instance, at) for instance in instances * 2))

    try:
        await sweep(0)
        assert await notices(client, world) == [("short", 1)]  # already within a day: no 7-day notice
        await sweep(23.5)
        await sweep(23.6)
        assert await notices(client, world) == [("short", 1), ("soon", 7)]
        rotated = await client.post(f"{PATS}{soon['uuid']}/rotate/", headers=world.owner_headers)
        assert rotated.status_code == 201  # the successor keeps the notice already given
        for days_later in (24, 29.5, 29.6, 53.5, 59.5, 59.7, 61):
            await sweep(days_later)
    finally:
        await other.state.runtime.alchemy.get_engine().dispose()
    assert await notices(client, world) == [("later", 1), ("later", 7), ("short", 1), ("soon", 1), ("soon", 7)]
