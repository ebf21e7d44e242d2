"""``POST /api-auth/password/`` and authentication with the returned key."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select

from service.auth_tokens.models import AuthToken
from service.runtime import Runtime
from tests.support.factories import auth, make_user

PASSWORD = "correct horse battery"


async def test_login_returns_the_same_key_while_valid(client: AsyncClient, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    first = await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})
    second = await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    assert first.json()["token"] == second.json()["token"]
    assert first.json()["token"].startswith("tgl_")


async def test_bad_credentials_get_401_with_waldur_message(client: AsyncClient, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    for body in ({"username": "alice", "password": "wrong-password"}, {"username": "nobody", "password": "x"}):
        response = await client.post("/api-auth/password/", json=body)
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid username/password."}


async def test_inactive_user_cannot_log_in(client: AsyncClient, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD, is_active=False)
    response = await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 401
    assert response.json() == {"detail": "User account is disabled."}


async def test_missing_field_is_a_400_naming_it(client: AsyncClient) -> None:
    response = await client.post("/api-auth/password/", json={"username": "alice"})
    assert response.status_code == 400
    assert "password" in response.json()


async def test_login_is_throttled_per_username(client: AsyncClient, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    limit = runtime.settings.login.max_failures_per_username
    for _ in range(limit):
        response = await client.post("/api-auth/password/", json={"username": "alice", "password": "bad-guess"})
        assert response.status_code == 401
    blocked = await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0


async def test_key_is_stored_only_as_hash_and_ciphertext(client: AsyncClient, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    key = (await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})).json()["token"]
    async with runtime.session() as session:
        row = (await session.execute(select(AuthToken))).scalar_one()
        raw = (await session.execute(select(AuthToken.__table__))).one()
    assert all(key not in str(value) for value in raw)
    assert all(key.encode() not in value for value in raw if isinstance(value, bytes))
    assert row.key_hash == runtime.keyring.token_hash(key)
    assert row.key_prefix == key[:12]


async def test_key_authenticates_and_header_variants(client: AsyncClient, runtime: Runtime) -> None:
    user = await make_user(runtime, "alice", password=PASSWORD)
    key = (await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})).json()["token"]
    for header in (f"Token {key}", f"Bearer {key}", f"token {key}"):
        response = await client.get(f"/api/users/{user.uuid}/", headers={"Authorization": header})
        assert response.status_code == 200, header
        assert response.json()["username"] == "alice"


async def test_every_bad_token_gets_the_same_401(client: AsyncClient, runtime: Runtime) -> None:
    user = await make_user(runtime, "alice", password=PASSWORD)
    key = (await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})).json()["token"]
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    unknown = "tgl_" + "0" * 43
    for header in (
        f"Token {forged}",
        "Token garbage",
        f"Token {key} extra",
        "Basic abc",
        f"Token {unknown}",
        "Token w_1_abc",
        "Token",
    ):
        response = await client.get(f"/api/users/{user.uuid}/", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json() == {"detail": "Invalid token."}
        assert response.headers["www-authenticate"] == "Token"
    missing = await client.get(f"/api/users/{user.uuid}/")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    assert (await client.get(f"/api/users/{user.uuid}/", headers=auth(key))).status_code == 200
