"""``/api/users/``: staff create, list and change users; a user may read only themself."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from service.runtime import Runtime
from tests.support.factories import auth, find_user, make_key, make_user, parse_links, token_of, user_with_key

USER_FIELDS = {
    "url",
    "uuid",
    "id",
    "username",
    "first_name",
    "last_name",
    "full_name",
    "email",
    "mobile_number",
    "is_active",
    "is_staff",
    "token_lifetime",
    "can_use_personal_access_tokens",
    "date_joined",
    "last_login",
}


async def staff_key(runtime: Runtime) -> str:
    return (await user_with_key(runtime, "root", staff=True))[1]


async def test_staff_creates_a_user_201(client: AsyncClient, runtime: Runtime) -> None:
    key = await staff_key(runtime)
    response = await client.post(
        "/api/users/",
        headers=auth(key),
        json={
            "username": "alice",
            "first_name": "Alice",
            "last_name": "Liddell",
            "email": "alice@example.org",
            "token_lifetime": 3600,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["username"] == "alice"
    assert body["full_name"] == "Alice Liddell"
    assert body["is_staff"] is False
    assert body["is_active"] is True
    assert body["token_lifetime"] == 3600
    assert body["can_use_personal_access_tokens"] is True  # the configured default
    assert body["url"] == f"http://testserver.local/api/users/{body['uuid'].replace('-', '')}/"
    assert "password" not in response.text
    assert (await find_user(runtime, "alice")).email == "alice@example.org"


async def test_created_password_works_for_login(client: AsyncClient, runtime: Runtime) -> None:
    key = await staff_key(runtime)
    created = await client.post(
        "/api/users/", headers=auth(key), json={"username": "bob", "password": "long enough pw"}
    )
    assert created.status_code == 201
    login = await client.post("/api-auth/password/", json={"username": "bob", "password": "long enough pw"})
    assert login.status_code == 200
    assert login.json()["token"].startswith("tgl_")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "root"}, "username"),  # taken
        ({"username": "has space"}, "username"),
        ({"username": "semi;colon"}, "username"),
        ({"username": ""}, "username"),
        ({"username": "x" * 129}, "username"),
        ({}, "username"),
        ({"username": "ok", "token_lifetime": 59}, "token_lifetime"),
        ({"username": "ok", "token_lifetime": -1}, "token_lifetime"),
        ({"username": "ok", "token_lifetime": "soon"}, "token_lifetime"),
        ({"username": "ok", "password": "short"}, "password"),
        ({"username": "ok", "is_staff": "yes"}, "is_staff"),
        ({"username": "ok", "first_name": "x" * 101}, "first_name"),
        ({"username": "ok", "unknown": 1}, "unknown"),
    ],
)
async def test_invalid_create_is_a_400_keyed_by_field(
    client: AsyncClient, runtime: Runtime, body: dict[str, object], field: str
) -> None:
    key = await staff_key(runtime)
    response = await client.post("/api/users/", headers=auth(key), json=body)
    assert response.status_code == 400, response.text
    assert list(response.json()) == [field]
    listed = await client.get("/api/users/", headers=auth(key))
    assert [user["username"] for user in listed.json()] == ["root"]  # nothing created


async def test_duplicate_username_message(client: AsyncClient, runtime: Runtime) -> None:
    key = await staff_key(runtime)
    response = await client.post("/api/users/", headers=auth(key), json={"username": "root"})
    assert response.json() == {"username": ["A user with that username already exists."]}


async def test_patch_changes_only_the_fields_sent(client: AsyncClient, runtime: Runtime) -> None:
    key = await staff_key(runtime)
    alice = await make_user(runtime, "alice", first_name="Alice", email="a@example.org")
    response = await client.patch(
        f"/api/users/{alice.uuid}/",
        headers=auth(key),
        json={
            "last_name": "Liddell",
            "mobile_number": "+372 5555 0000",
            "token_lifetime": 120,
            "is_staff": True,
            "can_use_personal_access_tokens": False,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["first_name"] == "Alice"
    assert body["email"] == "a@example.org"
    assert body["last_name"] == "Liddell"
    assert body["mobile_number"] == "+372 5555 0000"
    assert body["token_lifetime"] == 120
    assert body["is_staff"] is True
    assert body["can_use_personal_access_tokens"] is False
    cleared = await client.patch(f"/api/users/{alice.uuid}/", headers=auth(key), json={"token_lifetime": None})
    assert cleared.json()["token_lifetime"] is None
    stored = await find_user(runtime, "alice")
    assert stored.last_name == "Liddell"
    assert stored.token_lifetime is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"token_lifetime": 30}, "token_lifetime"),
        ({"username": "renamed"}, "username"),
        ({"is_active": "no"}, "is_active"),
        ({"password": "short"}, "password"),
    ],
)
async def test_invalid_patch_is_a_400_and_changes_nothing(
    client: AsyncClient, runtime: Runtime, body: dict[str, object], field: str
) -> None:
    key = await staff_key(runtime)
    alice = await make_user(runtime, "alice", token_lifetime=600)
    response = await client.patch(f"/api/users/{alice.uuid}/", headers=auth(key), json=body)
    assert response.status_code == 400, response.text
    assert list(response.json()) == [field]
    stored = await find_user(runtime, "alice")
    assert stored.username == "alice"
    assert stored.token_lifetime == 600
    assert stored.is_active


async def test_deactivation_revokes_the_legacy_key_at_once(client: AsyncClient, runtime: Runtime) -> None:
    key = await staff_key(runtime)
    alice, alice_key = await user_with_key(runtime, "alice")
    assert (await client.get(f"/api/users/{alice.uuid}/", headers=auth(alice_key))).status_code == 200  # cached
    response = await client.patch(f"/api/users/{alice.uuid}/", headers=auth(key), json={"is_active": False})
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    after = await client.get(f"/api/users/{alice.uuid}/", headers=auth(alice_key))
    assert after.status_code == 401
    assert after.json() == {"detail": "Invalid token."}
    assert await token_of(runtime, alice) is None
    # reactivating does not bring the old key back
    await client.patch(f"/api/users/{alice.uuid}/", headers=auth(key), json={"is_active": True})
    assert (await client.get(f"/api/users/{alice.uuid}/", headers=auth(alice_key))).status_code == 401
    assert await make_key(runtime, await find_user(runtime, "alice")) != alice_key


async def test_a_user_reads_self_but_not_others(client: AsyncClient, runtime: Runtime) -> None:
    alice, alice_key = await user_with_key(runtime, "alice")
    bob = await make_user(runtime, "bob")
    own = await client.get(f"/api/users/{alice.uuid}/", headers=auth(alice_key))
    assert own.status_code == 200
    assert own.json()["username"] == "alice"
    other = await client.get(f"/api/users/{bob.uuid}/", headers=auth(alice_key))
    assert other.status_code == 404
    assert "bob" not in other.text
    own_patch = await client.patch(f"/api/users/{alice.uuid}/", headers=auth(alice_key), json={"is_staff": True})
    assert own_patch.status_code == 403
    assert (await find_user(runtime, "alice")).is_staff is False


async def test_staff_reads_anyone_and_unknown_is_404(client: AsyncClient, runtime: Runtime) -> None:
    key = await staff_key(runtime)
    bob = await make_user(runtime, "bob")
    assert (await client.get(f"/api/users/{bob.uuid}/", headers=auth(key))).json()["username"] == "bob"
    assert (await client.get(f"/api/users/{bob.uuid.hex}/", headers=auth(key))).status_code == 200  # hex form
    missing = "00000000-0000-4000-8000-000000000000"
    assert (await client.get(f"/api/users/{missing}/", headers=auth(key))).status_code == 404
    assert (await client.patch(f"/api/users/{missing}/", headers=auth(key), json={})).status_code == 404
    assert (await client.get("/api/users/not-a-uuid/", headers=auth(key))).status_code in (400, 404)


async def test_list_is_staff_only_and_paginated(client: AsyncClient, runtime: Runtime) -> None:
    key = await staff_key(runtime)
    _, alice_key = await user_with_key(runtime, "alice")
    for n in range(4):
        await make_user(runtime, f"user{n}")
    assert (await client.get("/api/users/", headers=auth(alice_key))).status_code == 403
    assert (await client.get("/api/users/")).status_code == 401
    page = await client.get("/api/users/", params={"page": 2, "page_size": 2}, headers=auth(key))
    assert page.status_code == 200
    assert [user["username"] for user in page.json()] == ["user0", "user1"]  # ordered by id
    assert page.headers["x-result-count"] == "6"
    assert set(parse_links(page.headers["link"])) == {"first", "prev", "next", "last"}
    head = await client.head("/api/users/", headers=auth(key))
    assert head.headers["x-result-count"] == "6"
    assert head.content == b""
    by_name = await client.get("/api/users/", params={"username": "alice"}, headers=auth(key))
    assert [user["username"] for user in by_name.json()] == ["alice"]
    past = await client.get("/api/users/", params={"page": 4, "page_size": 2}, headers=auth(key))
    assert past.status_code == 404
