"""Reuse detection: a rotated-out PAT presented again revokes every live token of its rotation family."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from httpx import AsyncClient
from sqlalchemy import select

from service.pats.models import PersonalAccessToken
from service.pats.services import PatService
from service.runtime import Runtime
from tests.support.app import make_settings
from tests.support.pats import PATS, check, create_pat, end_grace
from tests.support.workers import WorkerB, within_deadline
from tests.support.world import World


async def works(client: AsyncClient, token: str, world: World) -> int:
    return (await check(client, token, "PROJECT.UPDATE", "project", world.project)).status_code


async def rotate(client: AsyncClient, world: World, token: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{PATS}{token['uuid']}/rotate/", headers=world.owner_headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def chain_of_three(client: AsyncClient, world: World) -> list[dict[str, Any]]:
    first = await create_pat(client, world.owner_headers, name="deploy")
    second = await rotate(client, world, first)
    return [first, second, await rotate(client, world, second)]


async def reuse_events(client: AsyncClient, world: World) -> list[dict[str, Any]]:
    response = await client.get(
        "/api/events/", headers=world.owner_headers, params={"event_type": "pat_reuse_detected"}
    )
    events: list[dict[str, Any]] = response.json()
    return events


async def family_of(runtime: Runtime, uuid: str) -> UUID:
    async with runtime.session() as session:
        family: UUID = await session.scalar(
            select(PersonalAccessToken.family_id).where(PersonalAccessToken.uuid == UUID(uuid))
        )
    return family


async def test_replaying_the_first_of_three_revokes_the_family(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    first, second, third = await chain_of_three(client, world)
    unrelated = await create_pat(client, world.owner_headers, name="other")
    assert await works(client, third["token"], world) == 200
    assert await family_of(runtime, first["uuid"]) == await family_of(runtime, third["uuid"])

    replay = await check(client, first["token"], "PROJECT.UPDATE", "project", world.project)
    assert replay.status_code == 401
    assert replay.json() == {"detail": "Invalid token."}
    assert await works(client, third["token"], world) == 401
    assert await works(client, second["token"], world) == 401
    assert await works(client, unrelated["token"], world) == 200
    shown = (await client.get(f"{PATS}{third['uuid']}/", headers=world.owner_headers)).json()
    assert shown["is_active"] is False

    [event] = await reuse_events(client, world)
    assert event["context"]["family_id"] == (await family_of(runtime, first["uuid"])).hex
    assert event["context"]["client_address"] == "127.0.0.1"
    assert event["context"]["pat_uuid"] == UUID(first["uuid"]).hex
    assert event["context"]["revoked_pat_uuids"] == [UUID(third["uuid"]).hex]
    assert all(token["token"] not in str(event) for token in (first, second, third))
    # a second replay finds nothing left to revoke and records nothing more
    assert await works(client, first["token"], world) == 401
    assert len(await reuse_events(client, world)) == 1


async def test_a_revoked_token_that_was_never_rotated_triggers_nothing(client: AsyncClient, world: World) -> None:
    revoked = await create_pat(client, world.owner_headers)
    assert (await client.delete(f"{PATS}{revoked['uuid']}/", headers=world.owner_headers)).status_code == 204
    assert await works(client, revoked["token"], world) == 401
    assert await reuse_events(client, world) == []


@pytest.fixture(name="settings")
def fx_settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Any:
    overrides: dict[str, str] = getattr(request, "param", {})
    return make_settings(database_url, tmp_path, **overrides)


@pytest.mark.parametrize("settings", [{"TOKENGATE_TOKENS__REUSE_DETECTION": "false"}], indirect=True)
async def test_switched_off_a_replay_is_only_refused(client: AsyncClient, world: World) -> None:
    first, _, third = await chain_of_three(client, world)
    assert await works(client, first["token"], world) == 401
    assert await works(client, third["token"], world) == 200
    assert await reuse_events(client, world) == []


@pytest.mark.parametrize("settings", [{"TOKENGATE_TOKENS__ROTATION_GRACE_SECONDS": "300"}], indirect=True)
async def test_with_a_grace_period_tokens_in_grace_go_too_and_the_grace_is_honoured(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    first, second, third = await chain_of_three(client, world)
    assert await works(client, first["token"], world) == 200  # in its grace: a legitimate late use, not reuse
    assert await reuse_events(client, world) == []
    await end_grace(runtime, first)  # the second is still in its own
    assert await works(client, second["token"], world) == 200
    assert await works(client, first["token"], world) == 401
    assert await works(client, second["token"], world) == 401
    assert await works(client, third["token"], world) == 401
    [event] = await reuse_events(client, world)
    assert sorted(event["context"]["revoked_pat_uuids"]) == sorted(UUID(t["uuid"]).hex for t in (second, third))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_the_family_is_refused_by_another_worker_at_once(
    client: AsyncClient, notified_b: WorkerB, world: World
) -> None:
    first, _, third = await chain_of_three(client, world)
    for _ in range(2):  # cached in B, the second a repeat of the first
        assert await works(notified_b.client, third["token"], world) == 200
    assert await works(client, first["token"], world) == 401  # replayed against worker A

    async def refused() -> bool:
        return await works(notified_b.client, third["token"], world) == 401

    await within_deadline(refused)


async def test_a_failed_family_revocation_still_answers_401(
    client: AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, third = await chain_of_three(client, world)

    async def broken(*_: object) -> int:
        raise ConnectionError("database away")

    monkeypatch.setattr(PatService, "revoke_family", broken)
    replay = await check(client, first["token"], "PROJECT.UPDATE", "project", world.project)
    assert replay.status_code == 401
    assert replay.json() == {"detail": "Invalid token."}
    monkeypatch.undo()
    assert await works(client, third["token"], world) == 200  # nothing was revoked
    assert await works(client, first["token"], world) == 401  # the next presentation tries again, and succeeds
    assert await works(client, third["token"], world) == 401


async def test_a_replay_while_the_owner_may_not_use_pats_still_revokes_the_family(
    client: AsyncClient, world: World
) -> None:
    first, _, third = await chain_of_three(client, world)
    owner = f"/api/users/{world.owner.uuid}/"
    denied = await client.patch(owner, json={"can_use_personal_access_tokens": False}, headers=world.staff_headers)
    assert denied.status_code == 200
    assert await works(client, first["token"], world) == 401
    allowed = await client.patch(owner, json={"can_use_personal_access_tokens": True}, headers=world.staff_headers)
    assert allowed.status_code == 200
    assert await works(client, third["token"], world) == 401
