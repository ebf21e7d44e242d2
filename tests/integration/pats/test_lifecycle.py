"""Create, list, retrieve, revoke, rotate and the plaintext-once rule."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select

from service.crypto import pat_expiry
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.security.guards import PAT_CANNOT_MANAGE_CREDENTIALS
from tests.support.factories import auth, user_with_key
from tests.support.pats import check, create_pat, in_days
from tests.support.world import World

PATS = "/api/personal-access-tokens/"


async def test_create_returns_plaintext_once(client: AsyncClient, world: World, runtime: Runtime) -> None:
    response = await client.post(
        PATS,
        headers=world.owner_headers,
        json={"name": "deploy", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(10)},
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert set(created) == {
        "uuid",
        "name",
        "token",
        "scopes",
        "allowed_scopes",
        "allowed_networks",
        "expires_at",
        "created",
    }
    token = created["token"]
    assert token.startswith("w_")
    assert pat_expiry(token) is not None
    listed = (await client.get(PATS, headers=world.owner_headers)).json()
    assert [item["uuid"] for item in listed] == [created["uuid"]]
    assert "token" not in listed[0]
    assert listed[0]["token_prefix"] == token[:21]
    assert listed[0]["last_used_at"] is None
    assert listed[0]["use_count"] == 0
    async with runtime.session() as session:
        row = (await session.execute(select(PersonalAccessToken.__table__))).one()
    assert all(token not in str(value) for value in row)


async def test_token_authenticates_and_usage_is_recorded(client: AsyncClient, world: World, runtime: Runtime) -> None:
    token = (await create_pat(client, world.owner_headers))["token"]
    for _ in range(3):
        response = await check(client, token, "PROJECT.UPDATE", "project", world.project)
        assert response.json()["allowed"] is True, response.text
    await runtime.usage.flush()
    listed = (await client.get(PATS, headers=world.owner_headers)).json()[0]
    assert listed["use_count"] == 3
    assert listed["last_used_ip"] == "127.0.0.1"
    assert listed["last_used_at"] is not None


async def test_revoke_is_soft_and_immediate(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    assert (await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)).status_code == 200
    assert (await client.delete(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).status_code == 204
    denied = await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)
    assert denied.status_code == 401
    assert denied.json() == {"detail": "Invalid token."}
    listed = (await client.get(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).json()
    assert listed["is_active"] is False


async def test_rotate_keeps_settings_and_kills_old(client: AsyncClient, world: World) -> None:
    created = await create_pat(
        client,
        world.owner_headers,
        allowed_networks=["127.0.0.0/8"],
        allowed_scopes=[{"type": "project", "uuid": world.project}],
    )
    response = await client.post(f"{PATS}{created['uuid']}/rotate/", headers=world.owner_headers)
    assert response.status_code == 201, response.text
    rotated = response.json()
    assert rotated["token"] != created["token"]
    assert rotated["uuid"] != created["uuid"]
    for field in ("name", "scopes", "allowed_scopes", "allowed_networks", "expires_at"):
        assert rotated[field] == created[field], field
    assert (await check(client, rotated["token"], "PROJECT.UPDATE", "project", world.project)).json()["allowed"] is True
    # (presenting the old one now is reuse, which also revokes the successor: see test_reuse_detection)
    assert (await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)).status_code == 401
    again = await client.post(f"{PATS}{created['uuid']}/rotate/", headers=world.owner_headers)
    assert again.status_code == 400
    assert again.json() == ["Cannot rotate an inactive token."]


async def test_put_and_patch_are_not_allowed(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    for method in ("PUT", "PATCH"):
        response = await client.request(
            method, f"{PATS}{created['uuid']}/", json={"name": "x"}, headers=world.owner_headers
        )
        assert response.status_code == 405


async def test_pat_cannot_manage_pats(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    as_pat = auth(created["token"])
    attempts = [
        ("POST", PATS, {"name": "x", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(1)}),
        ("POST", f"{PATS}{created['uuid']}/rotate/", None),
        ("POST", f"{PATS}{created['uuid']}/set_network_acl/", {"allowed_networks": []}),
        ("DELETE", f"{PATS}{created['uuid']}/", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=as_pat)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == {"detail": PAT_CANNOT_MANAGE_CREDENTIALS}
    assert (await client.get(PATS, headers=as_pat)).status_code == 200


async def test_users_see_only_their_own_staff_see_all(client: AsyncClient, world: World, runtime: Runtime) -> None:
    mine = await create_pat(client, world.owner_headers)
    _, other_key = await user_with_key(runtime, "other")
    assert (await client.get(f"{PATS}{mine['uuid']}/", headers=auth(other_key))).status_code == 404
    assert (await client.get(PATS, headers=auth(other_key))).json() == []
    everyone = await client.get(PATS, headers=world.staff_headers, params={"user": str(world.owner.uuid)})
    assert [item["uuid"] for item in everyone.json()] == [mine["uuid"]]
    assert (await client.head(PATS, headers=world.staff_headers)).headers["x-result-count"] == "1"
