"""Reuse detection: a rotated-out PAT presented again revokes every live token of its rotation family."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import select, update

from service.app import create_app
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.security import verifier as verifier_module
from tests.conftest import http_client, make_settings, running
from tests.integration.pats.conftest import PATS, World, check, create_pat
from tests.integration.test_multiworker import within_deadline


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
    assert replay.status_code == 401 and replay.json() == {"detail": "Invalid token."}
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
    async with runtime.session() as session:  # the first token's grace ends; the second is still in its own
        await session.execute(
            update(PersonalAccessToken)
            .where(PersonalAccessToken.uuid == UUID(first["uuid"]))
            .values(grace_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    runtime.verifier.forget_token(runtime.keyring.token_hash(first["token"]))
    assert await works(client, second["token"], world) == 200
    assert await works(client, first["token"], world) == 401
    assert await works(client, second["token"], world) == 401
    assert await works(client, third["token"], world) == 401
    [event] = await reuse_events(client, world)
    assert sorted(event["context"]["revoked_pat_uuids"]) == sorted(UUID(t["uuid"]).hex for t in (second, third))


@pytest.fixture(name="slow_worker_b")
async def fx_slow_worker_b(
    database_url: str, tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncClient]:
    """A second worker whose cache would trust the family's live token for a minute without a notification."""
    monkeypatch.setattr(verifier_module, "CACHE_TTL_SECONDS", 60.0)
    app: Litestar = create_app(make_settings(database_url, tmp_path, TOKENGATE_SYNC_INTERVAL_SECONDS="60"))
    async with running(app), http_client(app) as client:
        yield client
    await app.state.runtime.alchemy.get_engine().dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_the_family_is_refused_by_another_worker_at_once(
    client: AsyncClient, slow_worker_b: AsyncClient, world: World
) -> None:
    first, _, third = await chain_of_three(client, world)
    for _ in range(2):  # cached in B, the second a repeat of the first
        assert await works(slow_worker_b, third["token"], world) == 200
    assert await works(client, first["token"], world) == 401  # replayed against worker A

    async def refused() -> bool:
        return await works(slow_worker_b, third["token"], world) == 401

    await within_deadline(refused)
