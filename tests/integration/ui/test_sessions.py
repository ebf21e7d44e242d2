"""Page sessions: cookie flags, timeouts, tokens never accepted as sessions, CSRF scoped to the pages."""

from __future__ import annotations

import time

import httpx
import pytest
from litestar import Litestar

from service.runtime import Runtime
from service.ui import session as page_session
from tests.support.app import http_client, running
from tests.support.factories import auth, find_user, make_key
from tests.support.ui import PASSWORD, SignIn, csrf_of, post_form


async def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_pages(app: Litestar, people: None) -> None:
    async with running(app), http_client(app) as client:
        response = await post_form(client, "/ui/sign-in", "/ui/sign-in", {"username": "alice", "password": PASSWORD})
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("tokengate_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes
    assert "Path=/ui" in cookie
    assert "SameSite=strict" in cookie
    assert "secure" not in attributes  # plain HTTP here; over TLS see below


async def test_cookies_are_secure_over_tls(app: Litestar, people: None) -> None:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with running(app), httpx.AsyncClient(transport=transport, base_url="https://testserver.local") as client:
        response = await post_form(client, "/ui/sign-in", "/ui/sign-in", {"username": "alice", "password": PASSWORD})
        assert response.status_code == 302
        first = await client.get("/ui/sign-in")
    cookies = response.headers.get_list("set-cookie")
    assert cookies
    assert all("Secure" in cookie for cookie in cookies)
    assert first.status_code == 200


async def test_a_token_is_never_a_page_session(app: Litestar, runtime: Runtime, people: None) -> None:
    key = await make_key(runtime, await find_user(runtime, "alice"))
    async with running(app), http_client(app) as client:
        response = await client.get("/ui/tokens", headers=auth(key))
        assert response.status_code == 302
        assert response.headers["location"].startswith("/ui/sign-in")
        # ... nor does a page session authenticate the API
    async with running(app), http_client(app) as client:
        await post_form(client, "/ui/sign-in", "/ui/sign-in", {"username": "alice", "password": PASSWORD})
        assert (await client.get("/ui/tokens")).status_code == 200
        api = await client.get("/api/personal-access-tokens/")
        assert api.status_code == 401


async def test_a_forged_or_tampered_cookie_is_no_session(sign_in: SignIn) -> None:
    client = await sign_in("alice")
    value = client.cookies["tokengate_session"].strip('"')
    middle = len(value) // 2
    for forged in [
        value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :],  # the ciphertext
        *(value[:-cut] + "A" * cut for cut in range(1, 13)),  # the expiry in the clear tail
        "not base64 at all!",
        "",
    ]:
        client.cookies.set("tokengate_session", forged, path="/ui")
        response = await client.get("/ui/tokens")
        assert response.status_code == 302, forged
    client.cookies.set("tokengate_session", value, path="/ui")
    assert (await client.get("/ui/tokens")).status_code == 200


async def test_an_idle_session_ends(sign_in: SignIn, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    client = await sign_in("alice")
    assert (await client.get("/ui/tokens")).status_code == 200
    idle = runtime.settings.ui.idle_timeout_seconds
    later = time.time() + idle + 1
    monkeypatch.setattr(page_session.time, "time", lambda: later)
    response = await client.get("/ui/tokens")
    assert response.status_code == 302
    assert response.headers["location"] == "/ui/sign-in?next=/ui/tokens&ended=true"
    monkeypatch.undo()
    assert (await client.get("/ui/tokens")).status_code == 302  # the session was cleared, not just refused


async def test_activity_keeps_a_session_alive(
    sign_in: SignIn, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await sign_in("alice")
    idle = runtime.settings.ui.idle_timeout_seconds
    start = time.time()
    for step in (1, 2, 3):
        moment = start + step * (idle - 5)
        monkeypatch.setattr(page_session.time, "time", lambda moment=moment: moment)
        assert (await client.get("/ui/activity")).status_code == 200


async def test_a_deactivated_user_is_signed_out(sign_in: SignIn, runtime: Runtime) -> None:
    client = await sign_in("alice")
    root = await sign_in("root")
    alice = await find_user(runtime, "alice")
    key = await make_key(runtime, await find_user(runtime, "root"))
    response = await root.patch(f"/api/users/{alice.uuid}/", json={"is_active": False}, headers=auth(key))
    assert response.status_code == 200
    assert (await client.get("/ui/tokens")).status_code == 302


async def test_sign_out_ends_the_session(sign_in: SignIn) -> None:
    client = await sign_in("alice")
    response = await post_form(client, "/ui/tokens", "/ui/sign-out", {})
    assert response.status_code == 302
    assert (await client.get("/ui/tokens")).status_code == 302


async def test_sign_in_goes_back_to_a_page_of_this_site_only(app: Litestar, people: None) -> None:
    async with running(app), http_client(app) as client:
        for target, expected in [
            ("/ui/activity", "/ui/activity"),
            ("https://evil.example/", "/ui/tokens"),
            ("//evil.example/ui/", "/ui/tokens"),
            ("/api/users/", "/ui/tokens"),
        ]:
            client.cookies.clear()
            data = {"username": "alice", "password": PASSWORD, "next": target}
            response = await post_form(client, "/ui/sign-in", "/ui/sign-in", data)
            assert response.headers["location"] == expected


async def test_wrong_passwords_are_throttled_like_the_api_login(app: Litestar, runtime: Runtime, people: None) -> None:
    limit = runtime.settings.login.max_failures_per_username
    async with running(app), http_client(app) as client:
        for _ in range(limit):
            response = await post_form(client, "/ui/sign-in", "/ui/sign-in", {"username": "alice", "password": "no"})
            assert response.status_code == 401
            assert "Invalid username/password." in response.text
        response = await post_form(client, "/ui/sign-in", "/ui/sign-in", {"username": "alice", "password": PASSWORD})
        assert response.status_code == 429
        assert "Request was throttled" in response.text
        api = await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})
        assert api.status_code == 429


async def test_forms_need_their_csrf_token_and_the_api_does_not(
    app: Litestar, sign_in: SignIn, runtime: Runtime
) -> None:
    client = await sign_in("alice")
    assert (await client.post("/ui/sign-out")).status_code == 403
    wrong = await client.post("/ui/sign-out", data={"_csrf_token": "x" * 128})
    assert wrong.status_code == 403
    assert "not sent from a page of this site" in wrong.text
    assert (await client.get("/ui/tokens")).status_code == 200  # still signed in
    key = await make_key(runtime, await find_user(runtime, "alice"))
    async with http_client(app) as api:
        response = await api.post("/api/authz/check/", json={"permission": "PROJECT.UPDATE"}, headers=auth(key))
    assert response.status_code == 200


async def test_the_sign_in_form_itself_needs_a_csrf_token(app: Litestar, people: None) -> None:
    async with running(app), http_client(app) as client:
        await client.get("/ui/sign-in")
        response = await client.post("/ui/sign-in", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "tokengate_session" not in response.headers.get("set-cookie", "")


async def test_pages_are_not_cached_and_allow_no_foreign_code(sign_in: SignIn) -> None:
    client = await sign_in("alice")
    response = await client.get("/ui/tokens")
    assert response.headers["cache-control"] == "no-store"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert csrf_of(response.text)
