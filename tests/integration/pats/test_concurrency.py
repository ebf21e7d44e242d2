"""Concurrent rotations and creations: the row locks let exactly one through, never a 500."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from tests.support.pats import create_pat, in_days
from tests.support.world import World

PATS = "/api/personal-access-tokens/"
PARALLEL = 10

pytestmark = pytest.mark.concurrency


async def active_count(runtime: Runtime, user_id: int) -> int:
    async with runtime.session() as session:
        return await session.scalar(
            select(func.count())
            .select_from(PersonalAccessToken)
            .where(PersonalAccessToken.user_id == user_id, PersonalAccessToken.is_active.is_(True))
        )


async def test_parallel_rotations_of_one_token_let_exactly_one_through(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers, name="rotating")
    path = f"{PATS}{created['uuid']}/rotate/"
    responses = await asyncio.gather(*(client.post(path, headers=world.owner_headers) for _ in range(PARALLEL)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 400: PARALLEL - 1}, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert response.json() == ["Cannot rotate an inactive token."]
    successor = next(r.json() for r in responses if r.status_code == 201)
    async with runtime.session() as session:
        rows = list(
            await session.scalars(select(PersonalAccessToken).where(PersonalAccessToken.user_id == world.owner.id))
        )
    assert len(rows) == 2
    active = [row for row in rows if row.is_active]
    assert [str(row.uuid) for row in active] == [successor["uuid"]]
    assert active[0].name == "rotating"


async def test_parallel_creates_at_19_active_tokens_let_exactly_one_through(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    for n in range(19):
        await create_pat(client, world.owner_headers, name=f"t{n}")
    assert await active_count(runtime, world.owner.id) == 19
    body = {"name": "racer", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(5)}
    responses = await asyncio.gather(
        *(client.post(PATS, json=body, headers=world.owner_headers) for _ in range(PARALLEL))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 400: PARALLEL - 1}, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert response.json() == {"non_field_errors": ["Maximum number of active tokens (20) reached."]}
    assert await active_count(runtime, world.owner.id) == 20
