"""Rotation with a configured grace period: the rotated-out token works until the grace ends, revocation ends it.

Revoking a family's newest token ends the grace of the tokens it replaced.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest
from httpx import AsyncClient

from service.config import Settings
from service.runtime import Runtime
from tests.support.app import make_settings
from tests.support.pats import PATS, check, create_pat, end_grace
from tests.support.world import World

GRACE_SECONDS = 300


@pytest.fixture(name="settings")
def fx_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        TOKENGATE_TOKENS__ROTATION_GRACE_SECONDS=str(GRACE_SECONDS),
        TOKENGATE_TOKENS__PAT_MAX_PER_USER="2",
    )


async def allowed(client: AsyncClient, token: str, world: World) -> int:
    return (await check(client, token, "PROJECT.UPDATE", "project", world.project)).status_code


async def test_rotated_out_token_works_during_the_grace_period(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers)
    rotated = await client.post(f"{PATS}{created['uuid']}/rotate/", headers=world.owner_headers)
    assert rotated.status_code == 201
    successor = rotated.json()
    assert await allowed(client, created["token"], world) == 200
    assert await allowed(client, successor["token"], world) == 200
    shown = (await client.get(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).json()
    assert shown["is_active"] is False
    again = await client.post(f"{PATS}{created['uuid']}/rotate/", headers=world.owner_headers)
    assert again.status_code == 400
    assert again.json() == ["Cannot rotate an inactive token."]

    await end_grace(runtime, created)
    assert await allowed(client, successor["token"], world) == 200
    # (presenting the old one now is reuse, which also revokes the successor: see test_reuse_detection)
    assert await allowed(client, created["token"], world) == 401


async def test_revoking_a_token_in_grace_ends_it_at_once(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    assert (await client.post(f"{PATS}{created['uuid']}/rotate/", headers=world.owner_headers)).status_code == 201
    assert await allowed(client, created["token"], world) == 200
    assert (await client.delete(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).status_code == 204
    assert await allowed(client, created["token"], world) == 401


async def test_revoking_the_successor_ends_the_grace_of_the_tokens_it_replaced(
    client: AsyncClient, world: World
) -> None:
    first = await create_pat(client, world.owner_headers, name="deploy")
    second = (await client.post(f"{PATS}{first['uuid']}/rotate/", headers=world.owner_headers)).json()
    third = (await client.post(f"{PATS}{second['uuid']}/rotate/", headers=world.owner_headers)).json()
    unrelated = await create_pat(client, world.owner_headers, name="other")
    assert [await allowed(client, t["token"], world) for t in (first, second, third)] == [200, 200, 200]

    assert (await client.delete(f"{PATS}{third['uuid']}/", headers=world.owner_headers)).status_code == 204
    assert [await allowed(client, t["token"], world) for t in (first, second, third)] == [401, 401, 401]
    assert await allowed(client, unrelated["token"], world) == 200
    events = (
        await client.get("/api/events/", headers=world.owner_headers, params={"event_type": "pat_revoked"})
    ).json()
    ended = {event["context"]["pat_uuid"]: event["context"] for event in events}
    assert set(ended) == {UUID(t["uuid"]).hex for t in (first, second, third)}
    assert ended[UUID(first["uuid"]).hex]["successor_pat_uuid"] == UUID(third["uuid"]).hex


async def test_revoking_a_token_in_grace_leaves_its_successor_working(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    successor = (await client.post(f"{PATS}{created['uuid']}/rotate/", headers=world.owner_headers)).json()
    assert (await client.delete(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).status_code == 204
    assert await allowed(client, successor["token"], world) == 200


async def test_configured_cap_and_rotation_at_the_cap(client: AsyncClient, world: World, runtime: Runtime) -> None:
    first = await create_pat(client, world.owner_headers, name="one")
    await create_pat(client, world.owner_headers, name="two")
    refused = await client.post(
        PATS,
        headers=world.owner_headers,
        json={"name": "three", "scopes": ["PROJECT.UPDATE"], "expires_at": first["expires_at"]},
    )
    assert refused.status_code == 400
    assert refused.json() == {"non_field_errors": ["Maximum number of active tokens (2) reached."]}
    # rotation swaps one active token for another, so it is allowed at the cap (tokens in grace do not count)
    assert (await client.post(f"{PATS}{first['uuid']}/rotate/", headers=world.owner_headers)).status_code == 201
    listed = (await client.get(PATS, headers=world.owner_headers)).json()
    assert sorted(item["name"] for item in listed if item["is_active"]) == ["one", "two"]
