"""Audit events (``/api/events/``) and token introspection (``/api/authz/introspect/``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import update

from service.app import expire_tokens
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.security.usage import UsageFlushError
from tests.support.factories import auth, user_with_key
from tests.support.pats import check, create_pat
from tests.support.world import World

INTROSPECT = "/api/authz/introspect/"


async def test_users_see_their_own_events_staff_see_all(client: AsyncClient, world: World, runtime: Runtime) -> None:
    created = await create_pat(client, world.owner_headers, name="deploy")
    await client.delete(f"/api/personal-access-tokens/{created['uuid']}/", headers=world.owner_headers)
    own = (await client.get("/api/events/", headers=world.owner_headers)).json()
    types = [event["event_type"] for event in own]
    assert types[:2] == ["pat_revoked", "pat_created"]
    assert all(event["user"] == str(world.owner.uuid) for event in own)
    assert all(created["token"] not in str(event) for event in own)
    stranger, stranger_key = await user_with_key(runtime, "stranger")
    theirs = (await client.get("/api/events/", headers=auth(stranger_key))).json()
    assert {event["event_type"] for event in theirs} == {"user_created", "token_created"}
    assert all(event["user"] == str(stranger.uuid) for event in theirs)
    by_type = await client.get("/api/events/", headers=world.staff_headers, params={"event_type": "role_granted"})
    assert [event["event_type"] for event in by_type.json()] == ["role_granted"]
    assert by_type.headers["x-result-count"] == "1"


async def test_introspection_reports_active_pat_and_decides(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers, allowed_scopes=[{"type": "project", "uuid": world.project}])
    body = {
        "token": created["token"],
        "permission": "PROJECT.UPDATE",
        "entity": {"type": "project", "uuid": world.project},
    }
    response = await client.post(INTROSPECT, json=body, headers=world.staff_headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["active"] is True
    assert report["token_type"] == "pat"
    assert report["username"] == "owner"
    assert report["scope"] == "PROJECT.UPDATE"
    assert report["bindings"] == [world.project]
    assert report["exp"] == int(datetime.fromisoformat(created["expires_at"]).timestamp())
    assert report["decision"]["allowed"] is True
    body["entity"] = {"type": "project", "uuid": world.sibling}
    assert (await client.post(INTROSPECT, json=body, headers=world.staff_headers)).json()["decision"] == {
        "allowed": False,
        "clause": "token-binding",
        "reason": f"entity {world.sibling} is neither bound to the token nor below a bound entity",
    }


async def test_introspection_of_bad_tokens_says_only_inactive(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers, allowed_networks=["10.0.0.0/8"])
    for token, ip in ((created["token"], None), (created["token"], "192.0.2.1"), ("garbage", None)):
        response = await client.post(INTROSPECT, json={"token": token, "client_ip": ip}, headers=world.staff_headers)
        assert response.json() == {"active": False}
    inside = await client.post(
        INTROSPECT, json={"token": created["token"], "client_ip": "10.1.2.3"}, headers=world.staff_headers
    )
    assert inside.json()["active"] is True


async def test_introspection_is_staff_only(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    response = await client.post(INTROSPECT, json={"token": created["token"]}, headers=world.owner_headers)
    assert response.status_code == 403


async def test_expiry_sweep_deactivates_once_with_one_event(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers, name="short-lived")
    async with runtime.session() as session:
        await session.execute(update(PersonalAccessToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert await expire_tokens(runtime) == 1
    assert await expire_tokens(runtime) == 0
    token = (await client.get(f"/api/personal-access-tokens/{created['uuid']}/", headers=world.owner_headers)).json()
    assert token["is_active"] is False
    expired = await client.get("/api/events/", headers=world.owner_headers, params={"event_type": "pat_expired"})
    assert [event["context"]["pat_name"] for event in expired.json()] == ["short-lived"]


async def test_usage_survives_a_failed_flush(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_pat(client, world.owner_headers)
    await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)

    async def broken(*_: object) -> None:
        raise ConnectionError("database away")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.usage, "_write", broken)
        with pytest.raises(UsageFlushError):
            await runtime.usage.flush()
    await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)
    await runtime.usage.flush()
    token = (await client.get(f"/api/personal-access-tokens/{created['uuid']}/", headers=world.owner_headers)).json()
    assert token["use_count"] == 2
