"""Two workers (two apps, one database): a change made through one is honoured by the other within a second."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from httpx import AsyncClient, Response
from litestar import Litestar

from service.app import create_app
from service.authz.models import RoleAssignment
from service.authz.sync import ASSIGNMENT_ROWS, FactSync
from service.config import Settings
from service.runtime import Runtime
from service.security import verifier as verifier_module
from tests.conftest import ROOT, http_client, make_settings, running
from tests.integration.authz.support import is_denial
from tests.integration.pats.conftest import World, check, create_pat, fx_world  # noqa: F401  (fixture)

DEADLINE = 1.0


@pytest.fixture(name="worker_b")
async def fx_worker_b(settings: Settings, world: World) -> AsyncIterator[AsyncClient]:
    app: Litestar = create_app(settings)
    async with running(app), http_client(app) as client:
        yield client


async def within_deadline(condition: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until ``condition`` holds; fails past the deadline."""
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < DEADLINE, "change not honoured by the other worker within 1 s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def revoke_owner_roles(client: AsyncClient, world: World) -> None:
    """Revoke every role of the world's owner through ``client`` (worker A)."""
    assignments = (
        await client.get("/api/role-assignments/", headers=world.staff_headers, params={"user": str(world.owner.uuid)})
    ).json()
    for assignment in assignments:
        assert (
            await client.delete(f"/api/role-assignments/{assignment['uuid']}/", headers=world.staff_headers)
        ).status_code == 204


async def test_pat_revoked_through_a_is_refused_by_b(client: AsyncClient, worker_b: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    assert (await check(worker_b, created["token"], "PROJECT.UPDATE", "project", world.project)).status_code == 200
    response = await client.delete(f"/api/personal-access-tokens/{created['uuid']}/", headers=world.owner_headers)
    assert response.status_code == 204

    async def refused() -> bool:
        return (await check(worker_b, created["token"], "PROJECT.UPDATE", "project", world.project)).status_code == 401

    await within_deadline(refused)


async def test_role_revoked_through_a_denies_on_b(client: AsyncClient, worker_b: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    assert (await check(worker_b, created["token"], "PROJECT.UPDATE", "project", world.project)).json()[
        "allowed"
    ] is True
    await revoke_owner_roles(client, world)

    async def denied() -> bool:
        response = await check(worker_b, created["token"], "PROJECT.UPDATE", "project", world.project)
        return is_denial(response, "project", world.project)

    await within_deadline(denied)


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


# On PostgreSQL, LISTEN/NOTIFY: worker B learns of A's changes when they happen, not when its cache or poll runs out.
# Both are made to run out only after a minute here, so only a notification can meet the deadline.


@pytest.fixture(name="slow_worker_b")
async def fx_slow_worker_b(
    database_url: str, tmp_path: Path, world: World, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncClient]:
    monkeypatch.setattr(verifier_module, "CACHE_TTL_SECONDS", 60.0)
    app: Litestar = create_app(make_settings(database_url, tmp_path, TOKENGATE_SYNC_INTERVAL_SECONDS="60"))
    async with running(app), http_client(app) as client:
        yield client
    await app.state.runtime.alchemy.get_engine().dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_b_hears_of_a_pat_revocation_at_once(
    client: AsyncClient, slow_worker_b: AsyncClient, world: World
) -> None:
    created = await create_pat(client, world.owner_headers)
    for _ in range(2):  # cached in B, and the second one a repeat of the first
        response = await check(slow_worker_b, created["token"], "PROJECT.UPDATE", "project", world.project)
        assert response.status_code == 200
    response = await client.delete(f"/api/personal-access-tokens/{created['uuid']}/", headers=world.owner_headers)
    assert response.status_code == 204

    async def refused() -> bool:
        response = await check(slow_worker_b, created["token"], "PROJECT.UPDATE", "project", world.project)
        return response.status_code == 401

    await within_deadline(refused)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_b_hears_of_a_deactivated_user_at_once(
    client: AsyncClient, slow_worker_b: AsyncClient, world: World
) -> None:
    assert (await slow_worker_b.get("/api/personal-access-tokens/", headers=world.owner_headers)).status_code == 200
    response = await client.patch(
        f"/api/users/{world.owner.uuid}/", json={"is_active": False}, headers=world.staff_headers
    )
    assert response.status_code == 200, response.text

    async def refused() -> bool:
        return (await slow_worker_b.get("/api/personal-access-tokens/", headers=world.owner_headers)).status_code == 401

    await within_deadline(refused)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.postgres
async def test_b_hears_of_a_role_revocation_at_once(
    client: AsyncClient, slow_worker_b: AsyncClient, world: World
) -> None:
    async def answer() -> Response:
        return await slow_worker_b.post(
            "/api/authz/check/",
            headers=world.owner_headers,
            json={"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": world.project}},
        )

    assert (await answer()).json()["allowed"] is True
    await revoke_owner_roles(client, world)

    async def denied() -> bool:
        return is_denial(await answer(), "project", world.project)

    await within_deadline(denied)


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
