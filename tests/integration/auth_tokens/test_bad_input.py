"""Bad input on the legacy-token endpoints: a 400 naming the field, 401/403 as Waldur, never a 500, nothing changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from httpx import AsyncClient
from litestar import Litestar

from service.runtime import Runtime
from service.users.models import User
from tests.support.app import SHARED_LOOP
from tests.support.factories import auth, make_key, make_user, set_token_times, token_of, user_with_key

INVALID_TOKEN = {"detail": "Invalid token."}
SEED_000 = "/api/auth-tokens/"
SEED_001 = "/api/users/auth_tokens"


@dataclass
class Callers:
    """Staff (``root``) and ``alice``, with their legacy keys, in the module's shared app."""

    runtime: Runtime
    staff: User
    staff_key: str
    alice: User
    alice_key: str


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="callers")
async def fx_callers(module_app: Litestar) -> Callers:
    runtime: Runtime = module_app.state.runtime
    staff, staff_key = await user_with_key(runtime, "root", staff=True)
    alice, alice_key = await user_with_key(runtime, "alice")
    return Callers(runtime, staff, staff_key, alice, alice_key)


@SHARED_LOOP
@pytest.mark.parametrize(
    ("path", "param", "value"),
    [
        (SEED_000, "page", "0"),
        (SEED_000, "page", "-3"),
        (SEED_000, "page", "abc"),
        (SEED_000, "page_size", "abc"),
        (SEED_000, "page_size", "0"),
        (SEED_000, "page_size", "1000"),
        (SEED_001, "limit", "-1"),
        (SEED_001, "limit", "0"),
        (SEED_001, "limit", "1000"),
        (SEED_001, "offset", "-1"),
        (SEED_001, "offset", "x"),
        (SEED_001, "created_from", "notadate"),
        (SEED_001, "created_to", "2024-13-01"),
        (SEED_001, "updated_date", "yesterday"),
        (SEED_001, "created_date", "2024-02-30"),
        (SEED_001, "updated_from", "2024/01/01"),
        (SEED_001, "updated_to", ""),
        (SEED_001, "ordering", "unknown"),
        (SEED_001, "ordering", "key"),
        (SEED_001, "id_min", "x"),
        (SEED_001, "id_max", "1.5"),
        (SEED_001, "id_min", "-1"),
        (SEED_001, "id_max", str(2**64)),
        (SEED_001, "search", "x" * 201),
        ("/api/users/", "page_size", "1000"),
    ],
)
async def test_bad_query_is_a_400_naming_the_field(
    module_client: AsyncClient, callers: Callers, path: str, param: str, value: str
) -> None:
    before = await token_of(callers.runtime, callers.staff)
    response = await module_client.get(path, params={param: value}, headers=auth(callers.staff_key))
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == [param]
    assert isinstance(body[param], list)
    assert body[param]
    after = await token_of(callers.runtime, callers.staff)
    assert before is not None
    assert after is not None
    assert after.key_hash == before.key_hash


@SHARED_LOOP
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/auth-tokens/abc/"),
        ("DELETE", "/api/auth-tokens/0/"),
        ("GET", f"/api/auth-tokens/{2**64}/"),
        ("POST", f"{SEED_001}/abc/regenerate"),
        ("POST", f"{SEED_001}/0/regenerate"),
        ("POST", f"{SEED_001}/-1/regenerate"),
    ],
)
async def test_bad_path_ids_never_500_and_change_nothing(
    module_client: AsyncClient, callers: Callers, method: str, path: str
) -> None:
    before = await token_of(callers.runtime, callers.alice)
    response = await module_client.request(method, path, headers=auth(callers.staff_key))
    assert response.status_code in (400, 404), response.text
    after = await token_of(callers.runtime, callers.alice)
    assert before is not None
    assert after is not None
    assert after.key_hash == before.key_hash


@SHARED_LOOP
@pytest.mark.parametrize(
    "term",
    ["²", "٣", "'; DROP TABLE auth_token; --", "\\", "tgl_" + "A" * 49, "9" * 40, " ", "%_%", "ÿ" * 200],
)
async def test_odd_search_terms_never_500(module_client: AsyncClient, callers: Callers, term: str) -> None:
    response = await module_client.get(SEED_001, params={"search": term}, headers=auth(callers.staff_key))
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)
    assert "root" not in [item["user_data"]["username"] for item in response.json()]


@SHARED_LOOP
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", SEED_000),
        ("GET", SEED_001),
        ("GET", SEED_001 + "/"),
        ("POST", f"{SEED_001}/1/regenerate"),
        ("GET", "/api/users/"),
        ("POST", "/api/users/"),
    ],
)
async def test_non_staff_403_and_no_token_401(
    module_client: AsyncClient, callers: Callers, method: str, path: str
) -> None:
    before = await token_of(callers.runtime, callers.alice)
    forbidden = await module_client.request(
        method, path, headers=auth(callers.alice_key), json={"username": "mallory"} if method == "POST" else None
    )
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": "You do not have permission to perform this action."}
    missing = await module_client.request(method, path)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    after = await token_of(callers.runtime, callers.alice)
    assert before is not None
    assert after is not None
    assert after.key_hash == before.key_hash


async def test_garbage_expired_and_deleted_tokens_get_the_same_401(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    expired, expired_key = await user_with_key(runtime, "expired", token_lifetime=60)
    past = datetime.now(UTC) - timedelta(hours=1)
    await set_token_times(runtime, expired, refreshed_at=past, expires_at=past + timedelta(seconds=60))
    deleted, deleted_key = await user_with_key(runtime, "deleted", staff=True)
    assert (await client.delete(f"/api/auth-tokens/{deleted.id}/", headers=auth(staff_key))).status_code == 204
    inactive, inactive_key = await user_with_key(runtime, "inactive", staff=True)
    assert (
        await client.patch(f"/api/users/{inactive.uuid}/", json={"is_active": False}, headers=auth(staff_key))
    ).status_code == 200
    forged = staff_key[:-1] + ("A" if staff_key[-1] != "A" else "B")
    for token in ("garbage", forged, expired_key, deleted_key, inactive_key, "w_1_abc", "tgl_", "x" * 5000):
        for path in (SEED_000, SEED_001):
            response = await client.get(path, headers=auth(token))
            assert response.status_code == 401, (token, path)
            assert response.json() == INVALID_TOKEN
            assert response.headers["www-authenticate"] == "Token"


async def test_expired_token_is_replaced_at_next_login(client: AsyncClient, runtime: Runtime) -> None:
    user = await make_user(runtime, "alice", token_lifetime=60)
    old = await make_key(runtime, user)
    past = datetime.now(UTC) - timedelta(hours=1)
    await set_token_times(runtime, user, refreshed_at=past, expires_at=past + timedelta(seconds=60))
    new = await make_key(runtime, user)
    assert new != old
    assert (await client.get(f"/api/users/{user.uuid}/", headers=auth(new))).status_code == 200
    assert (await client.get(f"/api/users/{user.uuid}/", headers=auth(old))).json() == INVALID_TOKEN
