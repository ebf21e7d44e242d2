"""The verification cache: reloads, eviction and revocation keep it exact."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import update

from service.runtime import Runtime
from service.security import verifier as verifier_module
from service.users.models import User
from tests.factories import auth
from tests.integration.pats.conftest import PATS, World, check, create_pat


async def test_reload_keeps_an_unchanged_principal_and_sees_a_changed_one(
        client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    created = await create_pat(client, world.owner_headers)
    monkeypatch.setattr(verifier_module, "CACHE_TTL_SECONDS", -1.0)  # every verification reloads from the database
    first = await runtime.verifier.verify(created["token"], None)
    again = await runtime.verifier.verify(created["token"], None)
    assert first is not None and again is first  # same object: decision memo keys match by identity
    async with runtime.session() as session:  # behind the service's back: only a reload can see it
        await session.execute(update(User).where(User.id == world.owner.id).values(username="renamed"))
    changed = await runtime.verifier.verify(created["token"], None)
    assert changed is not None and changed is not first and changed.username == "renamed"


async def test_revoking_a_token_evicted_from_a_full_cache(client: AsyncClient, world: World, runtime: Runtime,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.verifier, "max_entries", 1)
    evicted = await create_pat(client, world.owner_headers, name="evicted")
    cached = await create_pat(client, world.owner_headers, name="cached")
    for token in (evicted["token"], cached["token"]):  # the second pushes the first out
        assert (await check(client, token, "PROJECT.UPDATE", "project", world.project)).status_code == 200
    for created in (evicted, cached):
        response = await client.delete(f"{PATS}{created['uuid']}/", headers=world.owner_headers)
        assert response.status_code == 204, response.text
        answer = await client.get(PATS, headers=auth(created["token"]))
        assert answer.status_code == 401 and answer.json() == {"detail": "Invalid token."}
