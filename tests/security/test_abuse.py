"""Injection and abuse: metacharacters are data, oversized input is refused cleanly, brute force is throttled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from litestar import Litestar

from service.config import Settings
from service.runtime import Runtime
from tests.support.app import make_settings
from tests.support.factories import auth, make_entity, make_user, user_with_key
from tests.support.security import security_client


@pytest.fixture(name="settings")
def fx_settings(database_url: str, tmp_path: Path) -> Settings:
    """Small throttling limits: every failed login costs an argon2 verification."""
    return make_settings(
        database_url,
        tmp_path,
        TOKENGATE_LOGIN__MAX_FAILURES_PER_USERNAME="3",
        TOKENGATE_LOGIN__MAX_FAILURES_PER_IP="6",
        TOKENGATE_SECURITY__TRUSTED_PROXIES='["127.0.0.1/32"]',
    )


METACHARACTERS = ["%", "_", "'", '"', "\\", "/", ";", "--", "' OR '1'='1", "%' OR 1=1 --", "a_b", "100%", "[ab]", "*"]


async def _names(response: httpx.Response, key: str) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(item[key] for item in response.json())


async def test_admin_token_search_takes_sql_and_like_metacharacters_literally(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, staff = await user_with_key(runtime, "root", staff=True)
    people = {
        "pct": "100%",
        "hundred": "100x",
        "under": "a_b",
        "axb": "axb",
        "quote": "O'Brien",
        "slash": "a/b",
        "bslash": "a\\b",
        "semi": "x; DROP TABLE user_account; --",
        "bracket": "[ab]",
        "star": "*",
    }
    for username, first_name in people.items():
        await user_with_key(runtime, username, first_name=first_name)
    listing = "/api/users/auth_tokens"
    everyone = await _names(await sclient.get(listing, params={"limit": 100}, headers=auth(staff)), "id")
    assert len(everyone) == len(people) + 1
    for term in METACHARACTERS:
        response = await sclient.get(listing, params={"search": term, "limit": 100}, headers=auth(staff))
        found = {item["user_data"]["username"] for item in response.json()}
        expected = {name for name, first in people.items() if term.lower() in first.lower() or term in name}
        assert response.status_code == 200, term
        assert found == expected, (term, found, expected)
    # the table survived the "DROP TABLE"
    assert await _names(await sclient.get(listing, params={"limit": 100}, headers=auth(staff)), "id") == everyone


async def test_exact_filters_never_match_by_pattern(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    _, staff = await user_with_key(runtime, "root", staff=True)
    await make_user(runtime, "userone")
    await make_entity(runtime, "customer", "ACME")
    cases = {
        "/api/users/": ("username", ["%", "user%", "user_ne", "_%", "' OR '1'='1", "root'--"], "userone"),
        "/api/entities/": ("type", ["%", "custom%", "c_stomer", "customer' OR '1'='1", "*"], "customer"),
        "/api/events/": ("event_type", ["%", "user_%", "user_created%", "user?created", "' OR 1=1 --"], "user_created"),
        "/api/role-assignments/": ("role", ["%", "CUSTOMER.%", "_"], None),
    }
    for path, (param, patterns, literal) in cases.items():
        for pattern in patterns:
            response = await sclient.get(path, params={param: pattern}, headers=auth(staff))
            assert response.status_code == 200, (path, pattern, response.text)
            assert response.json() == [], (path, pattern)
            assert response.headers["X-Result-Count"] == "0", (path, pattern)
        if literal is not None:
            response = await sclient.get(path, params={param: literal}, headers=auth(staff))
            assert response.status_code == 200, (path, literal)
            assert len(response.json()) >= 1, (path, literal)


ONE_MIB = 1024 * 1024


async def test_bodies_over_one_mib_are_refused_with_413(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    _, staff = await user_with_key(runtime, "root", staff=True)
    for path in ["/api/personal-access-tokens/", "/api/users/", "/api-auth/password/", "/api/authz/check/"]:
        await _refuses_oversized(sclient, path, staff)


async def _refuses_oversized(sclient: httpx.AsyncClient, path: str, staff: str) -> None:
    body = b'{"name": "' + b"x" * (ONE_MIB + 10) + b'"}'
    response = await sclient.post(path, content=body, headers={**auth(staff), "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "detail" in response.json()

    async def chunks() -> object:  # no Content-Length: the limit holds while streaming
        for _ in range(20):
            yield b"x" * (ONE_MIB // 8)

    response = await sclient.post(path, content=chunks(), headers={**auth(staff), "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    # just under the limit is parsed (and refused for what it says, not for its size)
    response = await sclient.post(
        path,
        content=b'{"junk": "' + b"x" * (ONE_MIB - 100) + b'"}',
        headers={**auth(staff), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


ABSURD_PAGES = [
    {"page_size": "101"},
    {"page_size": str(10**9)},
    {"page_size": "0"},
    {"page_size": "-1"},
    {"page_size": "1e3"},
    {"page_size": "abc"},
    {"page": "0"},
    {"page": str(10**10)},
    {"page": "-5"},
    {"page_size": "9" * 400},
]
ABSURD_WINDOWS = [
    {"limit": "101"},
    {"limit": str(2**64)},
    {"offset": "-1"},
    {"offset": str(10**13)},
    {"id_min": "-1"},
    {"id_max": str(2**64)},
    {"created_date": "2024-02-30"},
]


async def test_absurd_page_sizes_and_windows_are_400(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    _, staff = await user_with_key(runtime, "root", staff=True)
    for path in [
        "/api/users/",
        "/api/personal-access-tokens/",
        "/api/events/",
        "/api/entities/",
        "/api/role-assignments/",
        "/api/auth-tokens/",
    ]:
        for query in ABSURD_PAGES:
            response = await sclient.get(path, params=query, headers=auth(staff))
            assert response.status_code == 400, (path, query, response.text)
            assert set(response.json()) <= {"page", "page_size", "non_field_errors"}, response.text
    for query in ABSURD_WINDOWS:
        response = await sclient.get("/api/users/auth_tokens", params=query, headers=auth(staff))
        assert response.status_code == 400, (query, response.text)
    # the largest allowed page is fine
    assert (await sclient.get("/api/users/", params={"page_size": "100"}, headers=auth(staff))).status_code == 200


PASSWORD = "correct horse battery"


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api-auth/password/", json={"username": username, "password": password})


async def test_login_is_throttled_per_username_across_addresses(
    app: Litestar, sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_user(runtime, "victim", password=PASSWORD)
    limit = runtime.settings.login.max_failures_per_username
    for attempt in range(limit):
        async with security_client(app, client_ip=f"198.51.100.{attempt + 1}") as client:
            assert (await _login(client, "victim", f"guess-{attempt}")).status_code == 401
    async with security_client(app, client_ip="203.0.113.99") as fresh:
        throttled = await _login(fresh, "victim", PASSWORD)  # even the right password, from a new address
        assert throttled.status_code == 429, throttled.text
        retry_after = int(throttled.headers["Retry-After"])
        assert 1 <= retry_after <= runtime.settings.login.window_seconds
        assert "token" not in throttled.json()
        assert (await _login(fresh, "VICTIM", PASSWORD)).status_code == 429  # case does not dodge it
    # another user from the same addresses is not affected
    await make_user(runtime, "bystander", password=PASSWORD)
    async with security_client(app, client_ip="198.51.100.1") as client:
        assert (await _login(client, "bystander", PASSWORD)).status_code == 200


async def test_login_is_throttled_per_address_across_usernames(
    app: Litestar, sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    limit = runtime.settings.login.max_failures_per_ip
    async with security_client(app, client_ip="192.0.2.66") as attacker:
        for attempt in range(limit):
            assert (await _login(attacker, f"nobody{attempt}", "wrong-password")).status_code == 401
        throttled = await _login(attacker, "alice", PASSWORD)
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
    async with security_client(app, client_ip="192.0.2.67") as neighbour:
        assert (await _login(neighbour, "alice", PASSWORD)).status_code == 200


async def test_login_throttle_uses_the_forwarded_address_behind_a_trusted_proxy(
    app: Litestar, sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Behind the trusted proxy every peer is 127.0.0.1: the address the proxy appended is the client's."""
    await make_user(runtime, "alice", password=PASSWORD)
    limit = runtime.settings.login.max_failures_per_ip
    attacker = {"X-Forwarded-For": "10.0.0.1, 192.0.2.66"}  # the left-most entry is the attacker's own choice
    for attempt in range(limit):
        response = await sclient.post(
            "/api-auth/password/", headers=attacker, json={"username": f"nobody{attempt}", "password": "wrong-password"}
        )
        assert response.status_code == 401
    response = await sclient.post(
        "/api-auth/password/", headers=attacker, json={"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 429
    # another client behind the same proxy is not locked out by the attacker
    response = await sclient.post(
        "/api-auth/password/",
        headers={"X-Forwarded-For": "192.0.2.67"},
        json={"username": "alice", "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    events = await sclient.get(
        "/api/events/",
        params={"event_type": "auth_login_failed_with_username"},
        headers=auth(await _login_key(sclient, "alice")),
    )
    assert events.status_code == 200


async def _login_key(client: httpx.AsyncClient, username: str) -> str:
    response = await client.post(
        "/api-auth/password/",
        headers={"X-Forwarded-For": "192.0.2.68"},
        json={"username": username, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def test_garbage_token_flood_is_cheap_and_uniform(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    """Thousands of malformed, bad-checksum and unknown tokens: all 401 with one body, none reaching a 500."""
    _, key = await user_with_key(runtime, "real")
    garbage = [f"w_9999999999_{'A' * n}" for n in range(0, 60, 3)] + [
        "tgl_" + "B" * 49,
        "x" * 128,
        key[:-1] + ("Z" if key[-1] != "Z" else "Y"),  # the real key with its last character changed
        key + "A",
        "w_1_abc",
        "w_-1_x",
        "w__",
    ]
    responses = await asyncio.gather(
        *(sclient.get("/api/personal-access-tokens/", headers=auth(token)) for token in garbage * 20)
    )
    assert {r.status_code for r in responses} == {401}
    assert {r.text for r in responses} == {'{"detail":"Invalid token."}'}
    assert (await sclient.get("/api/personal-access-tokens/", headers=auth(key))).status_code == 200


@pytest.mark.parametrize("authorization", [None, "Token w_9999999999_" + "A" * 40, "Token " + "x" * 64])
async def test_every_refusal_carries_only_its_own_request_id(
    sclient: httpx.AsyncClient, authorization: str | None
) -> None:
    """The 401 is encoded once; no rejection may inherit headers another request's response added to it."""
    headers = {} if authorization is None else {"Authorization": authorization}
    responses = [await sclient.get("/api/personal-access-tokens/", headers=headers) for _ in range(5)]
    assert {r.status_code for r in responses} == {401}
    assert [len(r.headers.get_list("x-request-id")) for r in responses] == [1] * 5
    assert len({r.headers["x-request-id"] for r in responses}) == 5
    assert len({len(r.headers.raw) for r in responses}) == 1
