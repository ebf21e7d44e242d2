"""*Auth Tokens*: ``/api/auth-tokens/`` — staff list, retrieve and delete users' unexpired legacy tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import update

from service.runtime import Runtime
from service.users.models import User
from tests.support.factories import auth, make_key, make_user, parse_links, set_token_times, token_of, user_with_key

SEED_000_FIELDS = {
    "url",
    "created",
    "user",
    "user_first_name",
    "user_last_name",
    "user_username",
    "user_is_active",
    "user_token_lifetime",
}


async def test_list_has_exactly_the_seed_fields(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    alice, _ = await user_with_key(runtime, "alice", first_name="Alice", last_name="Liddell", token_lifetime=3600)
    response = await client.get("/api/auth-tokens/", headers=auth(staff_key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list)
    assert response.headers["x-result-count"] == "2"
    item = next(item for item in body if item["user_username"] == "alice")
    assert set(item) == SEED_000_FIELDS
    assert item["url"] == f"http://testserver.local/api/auth-tokens/{alice.id}/"
    assert item["user"] == f"http://testserver.local/api/users/{alice.uuid.hex}/"
    assert item["user_first_name"] == "Alice"
    assert item["user_last_name"] == "Liddell"
    assert item["user_is_active"] is True
    assert item["user_token_lifetime"] == 3600
    assert datetime.fromisoformat(item["created"]).tzinfo is not None
    assert "tgl_" not in response.text  # never the key


async def test_expired_tokens_are_not_listed(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    stale, _ = await user_with_key(runtime, "stale", token_lifetime=60)
    await user_with_key(runtime, "fresh", token_lifetime=60)
    past = datetime.now(UTC) - timedelta(seconds=120)
    await set_token_times(runtime, stale, refreshed_at=past, expires_at=past + timedelta(seconds=60))
    response = await client.get("/api/auth-tokens/", headers=auth(staff_key))
    assert sorted(item["user_username"] for item in response.json()) == ["fresh", "root"]
    assert (await client.get(f"/api/auth-tokens/{stale.id}/", headers=auth(staff_key))).status_code == 404


async def test_tokens_of_inactive_users_are_not_listed(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    gone, _ = await user_with_key(runtime, "gone")
    async with runtime.session() as session:  # deactivated behind the service's back: the token row is left
        await session.execute(update(User).where(User.id == gone.id).values(is_active=False))
    response = await client.get("/api/auth-tokens/", headers=auth(staff_key))
    assert [item["user_username"] for item in response.json()] == ["root"]


async def test_use_slides_the_expiry_forward(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    alice, alice_key = await user_with_key(runtime, "alice", token_lifetime=60)
    # 50 of 60 seconds gone: still valid, and past the half-lifetime debounce, so this use refreshes it.
    old = datetime.now(UTC) - timedelta(seconds=50)
    await set_token_times(runtime, alice, refreshed_at=old, expires_at=old + timedelta(seconds=60))
    assert (await client.get(f"/api/users/{alice.uuid}/", headers=auth(alice_key))).status_code == 200
    await runtime.usage.flush()
    token = await token_of(runtime, alice)
    assert token is not None
    assert token.expires_at is not None
    assert token.expires_at > datetime.now(UTC) + timedelta(seconds=50)
    listed = await client.get("/api/auth-tokens/", headers=auth(staff_key))
    assert "alice" in [item["user_username"] for item in listed.json()]


async def test_retrieve_by_integer_user_id(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    alice, _ = await user_with_key(runtime, "alice")
    response = await client.get(f"/api/auth-tokens/{alice.id}/", headers=auth(staff_key))
    assert response.status_code == 200
    assert response.json()["user_username"] == "alice"
    assert set(response.json()) == SEED_000_FIELDS
    missing = await client.get(f"/api/auth-tokens/{alice.id + 1000}/", headers=auth(staff_key))
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found."}


async def test_user_without_token_is_404(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    bob = await make_user(runtime, "bob")
    assert (await client.get(f"/api/auth-tokens/{bob.id}/", headers=auth(staff_key))).status_code == 404


async def test_delete_is_204_and_the_key_stops_at_once(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    alice, alice_key = await user_with_key(runtime, "alice")
    # warm the verifier's cache first, so the test proves that deletion drops it
    assert (await client.get(f"/api/users/{alice.uuid}/", headers=auth(alice_key))).status_code == 200
    response = await client.delete(f"/api/auth-tokens/{alice.id}/", headers=auth(staff_key))
    assert response.status_code == 204
    assert response.content == b""
    after = await client.get(f"/api/users/{alice.uuid}/", headers=auth(alice_key))
    assert after.status_code == 401
    assert after.json() == {"detail": "Invalid token."}
    assert await token_of(runtime, alice) is None
    assert (await client.delete(f"/api/auth-tokens/{alice.id}/", headers=auth(staff_key))).status_code == 404
    # the next login gets a new, different key
    assert await make_key(runtime, alice) != alice_key


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/auth-tokens/"),
        ("HEAD", "/api/auth-tokens/"),
        ("GET", "/api/auth-tokens/{id}/"),
        ("DELETE", "/api/auth-tokens/{id}/"),
    ],
)
async def test_non_staff_gets_403_and_anonymous_401(
    client: AsyncClient, runtime: Runtime, method: str, path: str
) -> None:
    alice, alice_key = await user_with_key(runtime, "alice")
    url = path.format(id=alice.id)
    forbidden = await client.request(method, url, headers=auth(alice_key))
    assert forbidden.status_code == 403
    if method != "HEAD":
        assert forbidden.json() == {"detail": "You do not have permission to perform this action."}
    anonymous = await client.request(method, url)
    assert anonymous.status_code == 401
    assert await token_of(runtime, alice) is not None  # nothing deleted


async def test_pagination_links_count_and_head(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    for n in range(6):
        await user_with_key(runtime, f"user{n}")
    page2 = await client.get("/api/auth-tokens/", params={"page": 2, "page_size": 3}, headers=auth(staff_key))
    assert page2.status_code == 200
    assert len(page2.json()) == 3
    assert page2.headers["x-result-count"] == "7"
    rels = parse_links(page2.headers["link"])
    assert set(rels) == {"first", "prev", "next", "last"}
    assert "page=1" in rels["first"]
    assert "page=1" in rels["prev"]
    assert "page=3" in rels["next"]
    assert "page=3" in rels["last"]
    assert all("page_size=3" in url for url in rels.values())
    assert all(url.startswith("http://testserver.local/api/auth-tokens/?") for url in rels.values())

    first = await client.get("/api/auth-tokens/", params={"page_size": 3}, headers=auth(staff_key))
    assert set(parse_links(first.headers["link"])) == {"first", "next", "last"}
    last = await client.get("/api/auth-tokens/", params={"page": 3, "page_size": 3}, headers=auth(staff_key))
    assert len(last.json()) == 1
    assert set(parse_links(last.headers["link"])) == {"first", "prev", "last"}
    seen = [item["user_username"] for r in (first, page2, last) for item in r.json()]
    assert len(set(seen)) == 7  # the pages partition the list

    default = await client.get("/api/auth-tokens/", headers=auth(staff_key))
    assert len(default.json()) == 7  # default page size is 10

    head = await client.head("/api/auth-tokens/", headers=auth(staff_key))
    assert head.status_code == 200
    assert head.headers["x-result-count"] == "7"
    assert head.content == b""

    past_end = await client.get("/api/auth-tokens/", params={"page": 4, "page_size": 3}, headers=auth(staff_key))
    assert past_end.status_code == 404
    assert past_end.json() == {"detail": "Invalid page."}
