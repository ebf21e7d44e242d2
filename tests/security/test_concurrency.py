"""Revocations racing the requests they should stop: once the revoking call has answered, nothing gets through.

Parallel rotation of one PAT (exactly one successor) and parallel creation at the 20-token limit (never 21 active)
are proved in ``tests/integration/pats/test_concurrency.py``; here the invariants are re-checked after the races
below, which mix use and revocation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from tests.support.factories import auth, grant, make_entity, user_with_key

pytestmark = pytest.mark.concurrency

ROUNDS = 3
USERS_PER_ROUND = 6  # parallel callers hammering while the revocation runs


async def race(
    use: Callable[[], Awaitable[bool]], revoke: Callable[[], Awaitable[None]], duration: float = 0.4
) -> tuple[int, int]:
    """Run callers of ``use`` while ``revoke`` runs once; returns (successes before, successes after revocation).

    A use counts as "after" when it *started* after ``revoke`` returned.
    """
    revoked_at: list[float] = []
    before = after = 0
    stop = time.monotonic() + duration

    async def caller() -> None:
        nonlocal before, after
        while time.monotonic() < stop or not revoked_at:
            started = time.monotonic()
            ok = await use()
            if ok and revoked_at and started > revoked_at[0]:
                after += 1
            elif ok:
                before += 1
            await asyncio.sleep(0)

    async def revoker() -> None:
        await asyncio.sleep(duration / 4)
        await revoke()
        revoked_at.append(time.monotonic())

    await asyncio.gather(revoker(), *(caller() for _ in range(USERS_PER_ROUND)))
    return before, after


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def active_pats(runtime: Runtime, user_id: int) -> int:
    async with runtime.session() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(PersonalAccessToken)
                .where(PersonalAccessToken.user_id == user_id, PersonalAccessToken.is_active.is_(True))
            )
            or 0
        )


async def test_no_request_succeeds_with_a_pat_after_its_revocation_answered(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner, key = await user_with_key(runtime, "owner")
    customer = await make_entity(runtime, "customer", "ACME")
    await grant(runtime, owner, "CUSTOMER.OWNER", customer)
    for round_ in range(ROUNDS):
        created = await sclient.post(
            "/api/personal-access-tokens/",
            headers=auth(key),
            json={"name": f"r{round_}", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(3)},
        )
        assert created.status_code == 201, created.text
        pat, uuid = created.json()["token"], created.json()["uuid"]

        async def use(pat: str = pat) -> bool:
            response = await sclient.get("/api/personal-access-tokens/", headers=auth(pat))
            assert response.status_code in (200, 401), response.text
            return response.status_code == 200

        async def revoke(uuid: str = uuid) -> None:
            response = await sclient.delete(f"/api/personal-access-tokens/{uuid}/", headers=auth(key))
            assert response.status_code == 204, response.text

        before, after = await race(use, revoke)
        assert before > 0, "the token never worked before its revocation"
        assert after == 0, f"round {round_}: {after} requests succeeded after the 204"
        assert not await use()
    assert await active_pats(runtime, owner.id) == 0


async def test_no_decision_allows_after_the_role_revocation_answered(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff, staff_key = await user_with_key(runtime, "root", staff=True)
    owner, key = await user_with_key(runtime, "owner")
    customer = await make_entity(runtime, "customer", "ACME")
    project = await make_entity(runtime, "project", "Apollo", parent=customer)
    created = await sclient.post(
        "/api/personal-access-tokens/",
        headers=auth(key),
        json={"name": "checker", "scopes": [], "expires_at": in_days(3)},
    )
    assert created.status_code == 400  # nothing delegable yet
    for round_ in range(ROUNDS):
        assignment = await grant(runtime, owner, "CUSTOMER.OWNER", customer, actor=staff)
        created = await sclient.post(
            "/api/personal-access-tokens/",
            headers=auth(key),
            json={"name": f"c{round_}", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(3)},
        )
        assert created.status_code == 201, created.text
        credentials = [key, created.json()["token"]]
        body = {"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": str(project.uuid)}}

        async def use(credentials: list[str] = credentials, body: dict[str, object] = body) -> bool:
            credential = credentials[0]
            credentials.reverse()  # alternate the legacy key and the PAT
            response = await sclient.post("/api/authz/check/", json=body, headers=auth(credential))
            # without the role the owner holds nothing near the project: the 404 of an unknown entity
            assert response.status_code in (200, 404), response.text
            return response.status_code == 200 and bool(response.json()["allowed"])

        async def revoke(uuid: str = str(assignment.uuid)) -> None:
            response = await sclient.delete(f"/api/role-assignments/{uuid}/", headers=auth(staff_key))
            assert response.status_code == 204, response.text

        before, after = await race(use, revoke)
        assert before > 0
        assert after == 0, f"round {round_}: {after} decisions allowed after the revocation's 204"
        assert not await use()


async def test_no_request_succeeds_with_a_legacy_key_after_its_regeneration_answered(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    owner, key = await user_with_key(runtime, "owner")
    listing = await sclient.get("/api/users/auth_tokens", params={"search": "owner"}, headers=auth(staff_key))
    token_id = listing.json()[0]["id"]
    for round_ in range(ROUNDS):
        login_key = key

        async def use(login_key: str = login_key) -> bool:
            response = await sclient.get("/api/personal-access-tokens/", headers=auth(login_key))
            assert response.status_code in (200, 401), response.text
            return response.status_code == 200

        async def regenerate() -> None:
            response = await sclient.post(f"/api/users/auth_tokens/{token_id}/regenerate", headers=auth(staff_key))
            assert response.status_code == 200, response.text

        before, after = await race(use, regenerate)
        assert before > 0
        assert after == 0, f"round {round_}: {after} requests succeeded with the old key after regenerate"
        assert not await use()
        async with runtime.session() as session:
            from service.auth_tokens.services import AuthTokenService
            from service.users.models import User

            key = await AuthTokenService(session=session, runtime=runtime).obtain_key(
                await session.get_one(User, owner.id)
            )
        assert key != login_key


async def test_deleting_a_legacy_key_and_deactivating_a_user_hold_under_load(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff, staff_key = await user_with_key(runtime, "root", staff=True)
    owner, key = await user_with_key(runtime, "owner")
    customer = await make_entity(runtime, "customer", "ACME")
    await grant(runtime, owner, "CUSTOMER.OWNER", customer, actor=staff)

    async def use_key() -> bool:
        response = await sclient.get("/api/personal-access-tokens/", headers=auth(key))
        return response.status_code == 200

    async def delete_key() -> None:
        response = await sclient.delete(f"/api/auth-tokens/{owner.id}/", headers=auth(staff_key))
        assert response.status_code == 204, response.text

    before, after = await race(use_key, delete_key)
    assert (before, after) != (0, 0)
    assert after == 0

    async with runtime.session() as session:
        from service.auth_tokens.services import AuthTokenService
        from service.users.models import User

        key = await AuthTokenService(session=session, runtime=runtime).obtain_key(await session.get_one(User, owner.id))
    created = await sclient.post(
        "/api/personal-access-tokens/",
        headers=auth(key),
        json={"name": "doomed", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(3)},
    )
    assert created.status_code == 201, created.text
    pat = created.json()["token"]

    async def use_pat() -> bool:
        return (await sclient.get("/api/personal-access-tokens/", headers=auth(pat))).status_code == 200

    async def deactivate() -> None:
        response = await sclient.patch(f"/api/users/{owner.uuid}/", json={"is_active": False}, headers=auth(staff_key))
        assert response.status_code == 200, response.text

    before, after = await race(use_pat, deactivate)
    assert before > 0
    assert after == 0
    assert not await use_key()
    assert await active_pats(runtime, owner.id) == 0
