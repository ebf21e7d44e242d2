"""The periodic usage flush writes a PAT's uses once they have waited ``tokens.usage_write_seconds``; audit events of
use, and everything at an explicit (shutdown) flush, at once."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from httpx import AsyncClient
from sqlalchemy import select

from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.security.verifier import CachedCredential
from tests.support.pats import create_pat
from tests.support.world import World


async def written(runtime: Runtime, token: dict[str, Any]) -> tuple[int, str | None]:
    async with runtime.session() as session:
        row = (
            await session.execute(
                select(PersonalAccessToken.use_count, PersonalAccessToken.last_used_ip).where(
                    PersonalAccessToken.uuid == UUID(token["uuid"])
                )
            )
        ).one()
    return row.use_count, row.last_used_ip


async def entry_of(runtime: Runtime, token: dict[str, Any]) -> CachedCredential:
    entry = await runtime.verifier.inspect(token["token"], None)
    assert entry is not None
    return entry


async def new_ip_events(client: AsyncClient, world: World) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/events/", headers=world.owner_headers, params={"event_type": "pat_used_from_new_ip"}
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


async def test_uses_wait_their_time_and_events_do_not(client: AsyncClient, world: World, runtime: Runtime) -> None:
    wait = runtime.settings.tokens.usage_write_seconds
    assert wait == 30  # the default
    first, second = (
        await create_pat(client, world.owner_headers, name="a"),
        await create_pat(client, world.owner_headers, name="b"),
    )
    a, b = await entry_of(runtime, first), await entry_of(runtime, second)
    usage, start = runtime.usage, time.time() - 100
    usage.record(a, start, "192.0.2.1")
    usage.record(a, start + 1, "192.0.2.2")  # a new address: an event
    usage.record(b, start + 20, "192.0.2.3")

    await usage.flush_due(now=start + wait - 5)
    assert [await written(runtime, t) for t in (first, second)] == [(0, None), (0, None)]
    [event] = await new_ip_events(client, world)
    assert event["context"]["pat_uuid"] == UUID(first["uuid"]).hex

    await usage.flush_due(now=start + wait)
    assert [await written(runtime, t) for t in (first, second)] == [(2, "192.0.2.2"), (0, None)]

    usage.record(a, start + wait + 1, "192.0.2.2")
    await usage.flush_due(now=start + wait + 2)
    assert await written(runtime, first) == (2, "192.0.2.2")  # a new wait began with the use after the write
    await usage.flush()
    assert [await written(runtime, t) for t in (first, second)] == [(3, "192.0.2.2"), (1, "192.0.2.3")]
    assert len(await new_ip_events(client, world)) == 1
