"""The published ``waldur-api-client`` 8.1.3, unmodified, driving login and the *Auth Tokens* API in-process."""

from __future__ import annotations

import httpx
import pytest
from httpx import AsyncClient
from litestar import Litestar
from waldur_api_client.api.api_auth import api_auth_password
from waldur_api_client.api.auth_tokens import (
    auth_tokens_count,
    auth_tokens_destroy,
    auth_tokens_list,
    auth_tokens_retrieve,
)
from waldur_api_client.client import AuthenticatedClient, Client
from waldur_api_client.errors import UnexpectedStatus
from waldur_api_client.models import AuthToken, AuthTokenChallenge, CoreAuthToken, ObtainAuthTokenRequest

from service.runtime import Runtime
from tests.support.factories import make_key, make_user, user_with_key

BASE_URL = "http://testserver.local"
PASSWORD = "correct horse battery"
MANY = 105  # more than the client's page size of 100, so asyncio_all has to follow a "next" link


def transport(app: Litestar) -> dict[str, httpx.ASGITransport]:
    return {"transport": httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))}


def waldur(app: Litestar, key: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=BASE_URL, token=key, httpx_args=transport(app))


async def test_password_login_through_the_client(client: AsyncClient, app: Litestar, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD, staff=True)
    anonymous = Client(base_url=BASE_URL, httpx_args=transport(app))
    token = await api_auth_password.asyncio(client=anonymous, body=ObtainAuthTokenRequest("alice", PASSWORD))
    assert isinstance(token, CoreAuthToken)
    assert token.token.startswith("tgl_")
    again = await api_auth_password.asyncio(client=anonymous, body=ObtainAuthTokenRequest("alice", PASSWORD))
    assert isinstance(again, CoreAuthToken)
    assert again.token == token.token
    bad = await api_auth_password.asyncio_detailed(client=anonymous, body=ObtainAuthTokenRequest("alice", "nope"))
    assert bad.status_code == 401
    assert isinstance(bad.parsed, AuthTokenChallenge)
    # the key from the client's login authenticates the client's own "Token <key>" header
    assert await auth_tokens_count.asyncio(client=waldur(app, token.token)) == 1


async def test_list_all_pages_retrieve_count_and_destroy(client: AsyncClient, app: Litestar, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    users = []
    for n in range(MANY):
        user = await make_user(runtime, f"user{n:03d}", first_name=f"First{n}", token_lifetime=3600 if n % 2 else None)
        await make_key(runtime, user)
        users.append(user)
    staff = waldur(app, staff_key)

    first_page = await auth_tokens_list.asyncio(client=staff)
    assert len(first_page) == 10
    assert all(isinstance(item, AuthToken) for item in first_page)

    everything = await auth_tokens_list.asyncio_all(client=staff)
    assert len(everything) == MANY + 1
    assert len({item.user_username for item in everything}) == MANY + 1
    by_name = {item.user_username: item for item in everything}
    assert by_name["user001"].user_token_lifetime == 3600
    assert by_name["user000"].user_token_lifetime is None
    assert by_name["user007"].user_first_name == "First7"

    assert await auth_tokens_count.asyncio(client=staff) == MANY + 1

    target = users[42]
    retrieved = await auth_tokens_retrieve.asyncio(user_id=target.id, client=staff)
    assert isinstance(retrieved, AuthToken)
    assert retrieved.user_username == "user042"
    assert retrieved.url == f"{BASE_URL}/api/auth-tokens/{target.id}/"

    destroyed = await auth_tokens_destroy.asyncio_detailed(user_id=target.id, client=staff)
    assert destroyed.status_code == 204
    assert await auth_tokens_count.asyncio(client=staff) == MANY
    with pytest.raises(UnexpectedStatus) as gone:
        await auth_tokens_retrieve.asyncio(user_id=target.id, client=staff)
    assert gone.value.status_code == 404


async def test_non_staff_and_revoked_keys_are_refused(client: AsyncClient, app: Litestar, runtime: Runtime) -> None:
    _, key = await user_with_key(runtime, "alice")
    with pytest.raises(UnexpectedStatus) as forbidden:
        await auth_tokens_list.asyncio(client=waldur(app, key))
    assert forbidden.value.status_code == 403
    with pytest.raises(UnexpectedStatus) as invalid:
        await auth_tokens_count.asyncio(client=waldur(app, "tgl_not-a-key"))
    assert invalid.value.status_code == 401
