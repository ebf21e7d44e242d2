"""Two workers (two apps, one database): a change made through one is honoured by the other within a second."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response
from litestar import Litestar

from service.app import create_app
from service.authz.models import RoleAssignment
from service.authz.sync import ASSIGNMENT_ROWS, FactSync
from service.config import Settings
from service.runtime import Runtime
from tests.support.app import ROOT, http_client, make_settings, running
from tests.support.authz import is_denial
from tests.support.pats import check, create_pat
from tests.support.workers import WorkerB, within_deadline, worker
from tests.support.world import World


@pytest.fixture(name="worker_b")
async def fx_worker_b(settings: Settings, world: World) -> AsyncIterator[AsyncClient]:
    app: Litestar = create_app(settings)
    async with running(app), http_client(app) as client:
        yield client


async def revoke_owner_roles(client: AsyncClient, world: World) -> None:
    """Revoke every role of the world's owner through ``client`` (worker A)."""
    assignments = (
        await client.get("/api/role-assignments/", headers=world.staff_headers, params={"user": str(world.owner.uuid)})
    ).json()
    for assignment in assignments:
        assert (
            await client.delete(f"/api/role-assignments/{assignment['uuid']}/", headers=world.staff_headers)
        ).status_code == 204


async def test_entity_registered_through_a_is_known_to_b(
    client: AsyncClient, worker_b: AsyncClient, world: World
) -> None:
    created = await client.post(
        "/api/entities/", json={"type": "project", "name": "new", "parent": world.customer}, headers=world.staff_headers
    )
    project = created.json()["uuid"]
    legacy = world.owner_headers

    async def known() -> bool:
        response = await worker_b.post(
            "/api/authz/check/",
            headers=legacy,
            json={"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": project}},
        )
        return response.status_code == 200 and response.json()["allowed"] is True

    await within_deadline(known)


async def test_a_stale_poll_cannot_bring_a_revoked_role_back(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    """A poll that read the assignment before a local revocation applies its rows after it: they lose."""
    created = await create_pat(client, world.owner_headers)
    async with runtime.session() as session:
        stale = (await session.execute(ASSIGNMENT_ROWS.where(RoleAssignment.is_active.is_(True)))).all()
    assert stale, "the owner's assignment should be active before the revocation"
    for row in stale:
        assert (await client.delete(f"/api/role-assignments/{row[0]}/", headers=world.staff_headers)).status_code == 204
    FactSync(runtime).apply_assignments(stale)
    response = await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)
    assert is_denial(response, "project", world.project)


# A change made through A is honoured by B within the deadline while B holds long-lived cached verifications: told
# by NOTIFY (PostgreSQL, B's own polls stretched to a minute so only a notification can meet the deadline), or found
# by B's polls of the rows changed since its last look (SQLite; PostgreSQL with B's channel cut).


@pytest.fixture(name="polling_b")
async def fx_polling_b(
    database_url: str, tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[WorkerB]:
    async with worker(database_url, tmp_path, monkeypatch, listens=False) as b:
        yield b


async def revoke_pat(client: AsyncClient, world: World, created: dict[str, Any]) -> None:
    response = await client.delete(f"/api/personal-access-tokens/{created['uuid']}/", headers=world.owner_headers)
    assert response.status_code == 204, response.text


async def deactivate_owner(client: AsyncClient, world: World, created: dict[str, Any]) -> None:
    response = await client.patch(
        f"/api/users/{world.owner.uuid}/", json={"is_active": False}, headers=world.staff_headers
    )
    assert response.status_code == 200, response.text


async def move_acl_away(client: AsyncClient, world: World, created: dict[str, Any]) -> None:
    response = await client.post(
        f"/api/personal-access-tokens/{created['uuid']}/set_network_acl/",
        json={"allowed_networks": ["198.51.100.0/24"]},  # B's client is 127.0.0.1
        headers=world.owner_headers,
    )
    assert response.status_code == 200, response.text


async def revoke_roles(client: AsyncClient, world: World, created: dict[str, Any]) -> None:
    await revoke_owner_roles(client, world)


def refused_token(response: Response, world: World) -> bool:
    return response.status_code == 401


def denied_check(response: Response, world: World) -> bool:
    return is_denial(response, "project", world.project)


Change = Callable[[AsyncClient, World, dict[str, Any]], Awaitable[None]]
Honoured = Callable[[Response, World], bool]
CHANGES: list[tuple[Change, Honoured]] = [  # the change, and how B answers the token's check after it
    (revoke_pat, refused_token),
    (deactivate_owner, refused_token),
    (move_acl_away, refused_token),
    (revoke_roles, denied_check),
]
CHANGE_IDS = ["pat-revocation", "user-deactivation", "acl-change", "role-revocation"]


async def b_honours(a: AsyncClient, b: WorkerB, world: World, change: Change, answer: Honoured) -> None:
    created = await create_pat(a, world.owner_headers)
    await b.holds_a_long_lived_entry(created["token"], world)
    await change(a, world, created)

    async def honoured() -> bool:
        return answer(await check(b.client, created["token"], "PROJECT.UPDATE", "project", world.project), world)

    await within_deadline(honoured)


@pytest.mark.parametrize(("change", "answer"), CHANGES, ids=CHANGE_IDS)
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_b_hears_of_a_change_through_a_at_once(
    client: AsyncClient, notified_b: WorkerB, world: World, change: Change, answer: Honoured
) -> None:
    await b_honours(client, notified_b, world, change, answer)


@pytest.mark.parametrize(("change", "answer"), CHANGES, ids=CHANGE_IDS)
async def test_b_finds_a_change_through_a_by_polling_without_notifications(
    client: AsyncClient, polling_b: WorkerB, world: World, change: Change, answer: Honoured
) -> None:
    await b_honours(client, polling_b, world, change, answer)


async def test_b_stops_trusting_its_cache_when_its_polls_stop(
    client: AsyncClient, polling_b: WorkerB, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unconfirmed entries are looked up again: a change is honoured in time even if B cannot poll."""
    created = await create_pat(client, world.owner_headers)
    await polling_b.holds_a_long_lived_entry(created["token"], world)
    monkeypatch.setattr(polling_b.runtime.verifier, "confirm", lambda started, trusted_for: None)
    looked_up = len(polling_b.lookups)
    await asyncio.sleep(2 * polling_b.runtime.settings.sync_interval_seconds + 0.1)
    response = await check(polling_b.client, created["token"], "PROJECT.UPDATE", "project", world.project)
    assert response.status_code == 200
    assert len(polling_b.lookups) > looked_up


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_b_reloads_its_policy_when_a_reloads(
    client: AsyncClient, runtime: Runtime, world: World, database_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", rules)
    app: Litestar = create_app(make_settings(database_url, tmp_path, TOKENGATE_POLICY_DIR=str(rules)))
    async with running(app), http_client(app) as worker_b:

        async def allowed() -> bool:
            response = await worker_b.post(
                "/api/authz/check/",
                headers=world.owner_headers,
                json={"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": world.project}},
            )
            return bool(response.json()["allowed"])

        assert await allowed()
        roles = rules / "roles.csv"  # B's copy of the rules no longer lets a customer owner update projects
        roles.write_text(roles.read_text().replace("g, CUSTOMER.OWNER, PROJECT.UPDATE\n", ""))
        assert await runtime.reload_policy()  # A reloads (on SIGHUP, in production) and tells the others

        async def denied() -> bool:
            return not await allowed()

        await within_deadline(denied)
    await app.state.runtime.alchemy.get_engine().dispose()


@pytest.mark.parametrize("action", ["delete", "regenerate"])
async def test_b_finds_a_legacy_key_deleted_or_regenerated_through_a_by_polling(
    client: AsyncClient, polling_b: WorkerB, world: World, action: str
) -> None:
    """A deleted row is invisible to a poll of changed rows: the deletion marks the user changed instead."""
    profile = f"/api/users/{world.owner.uuid}/"
    for _ in range(2):
        assert (await polling_b.client.get(profile, headers=world.owner_headers)).status_code == 200
        await asyncio.sleep(0.7)
    if action == "delete":
        response = await client.delete(f"/api/auth-tokens/{world.owner.id}/", headers=world.staff_headers)
        assert response.status_code == 204, response.text
    else:
        listed = await client.get("/api/users/auth_tokens/", headers=world.staff_headers)
        token_id = next(item["id"] for item in listed.json() if item["user_data"]["id"] == world.owner.id)
        response = await client.post(f"/api/users/auth_tokens/{token_id}/regenerate", headers=world.staff_headers)
        assert response.status_code == 200, response.text

    async def refused() -> bool:
        return (await polling_b.client.get(profile, headers=world.owner_headers)).status_code == 401

    await within_deadline(refused)
