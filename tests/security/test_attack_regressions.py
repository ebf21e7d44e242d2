"""Defects found by attacking the running service from outside, each pinned by the request that showed it.

- The pages' decision explainer answers a non-staff person about an entity they hold nothing on exactly as about
  one that does not exist (the API's ``/api/authz/check/`` rule): no name, type or ancestor of it.
- Error pages carry the pages' security headers (no framing, no caching, no sniffing) like every other page.
- Behind a trusted TLS-terminating proxy (``X-Forwarded-Proto: https``) the page cookies are ``Secure``.
- A NUL in a page's query is a 400 on every backend (PostgreSQL cannot compare text with NUL: it was a 500).
- Deactivating a user ends their rotated-out tokens still in grace too: reactivation revives none of them.
- After sign-in, ``next`` never leads out of the pages, dot segments included.
- The sign-in form takes the API login's limits: one attempt cannot write a megabyte into the audit log.
- A leak report's source is printable: it lands in the owner's audit event as reported.
- The leak-report throttle counts an IPv6 client by its /64, as the login throttle does.
- The policy invariants name their files as decisions do (`policies/invariants.yaml:18`), not by server path.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from litestar import Litestar

from service.config import Settings
from service.runtime import Runtime
from tests.support.app import http_client, make_settings, running
from tests.support.factories import auth, grant, make_entity, make_key, make_user
from tests.support.ui import PASSWORD, csrf_of, post_form

PATS = "/api/personal-access-tokens/"


@pytest.fixture(name="settings")
def fx_settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Settings:
    """The test settings, with the overrides a test asks for (``indirect`` parametrisation)."""
    overrides: dict[str, str] = getattr(request, "param", {})
    return make_settings(database_url, tmp_path, **overrides)


async def _signed_in(app: Litestar, username: str) -> httpx.AsyncClient:
    client = http_client(app)
    response = await post_form(client, "/ui/sign-in", "/ui/sign-in", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.text
    return client


def _entity_errors(html: str) -> list[str]:
    """The messages a page shows under its entity field."""
    found = re.search(r'<ul class="field-errors" id="entity-errors">(.*?)</ul>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", found.group(1)) if found else []


async def test_the_explainer_tells_a_non_staff_person_nothing_of_an_entity_they_hold_nothing_on(
    app: Litestar, runtime: Runtime
) -> None:
    alice = await make_user(runtime, "alice", password=PASSWORD)
    await make_user(runtime, "root", password=PASSWORD, staff=True)
    own = await make_entity(runtime, "customer", "Acme")
    await grant(runtime, alice, "CUSTOMER.OWNER", own)
    hidden_customer = await make_entity(runtime, "customer", "Globex Secret")
    hidden = await make_entity(runtime, "project", "Hidden Project", parent=hidden_customer)
    async with running(app):
        client, staff = await _signed_in(app, "alice"), await _signed_in(app, "root")
        try:

            async def explain(who: httpx.AsyncClient, entity: str) -> httpx.Response:
                query = {"permission": "PROJECT.UPDATE", "entity": entity}
                return await who.get("/ui/policy/explain", params=query)

            about_hidden = await explain(client, str(hidden.uuid))
            about_nothing = await explain(client, str(uuid4()))
            about_own = await explain(client, str(own.uuid))
            as_staff = await explain(staff, str(hidden.uuid))
        finally:
            await client.aclose()
            await staff.aclose()
    assert "Hidden Project" not in about_hidden.text
    assert "Globex Secret" not in about_hidden.text
    assert str(hidden_customer.uuid) not in about_hidden.text
    assert about_hidden.status_code == 400
    assert about_nothing.status_code == 400
    assert _entity_errors(about_hidden.text) == _entity_errors(about_nothing.text)
    assert _entity_errors(about_hidden.text) != []
    assert "Acme" in about_own.text  # what they hold is explained as before
    assert "Globex Secret" in as_staff.text  # and staff see everything


async def test_a_nul_in_a_page_query_or_form_is_a_400_and_never_a_500(app: Litestar, runtime: Runtime) -> None:
    await make_user(runtime, "root", password=PASSWORD, staff=True)
    queries = [
        ("/ui/tokens/new", {"q": "a\x00"}),
        ("/ui/staff/users", {"q": "a\x00"}),
        ("/ui/staff/entities", {"q": "a\x00"}),
        ("/ui/staff/assignments", {"user": "a\x00"}),
        ("/ui/staff/assignments", {"role": "a\x00"}),
        ("/ui/policy/explain", {"permission": "PROJECT.UPDATE", "username": "a\x00"}),
        ("/ui/policy/explain", {"permission": "a\x00"}),
    ]
    forms = [  # a grant for a username, and a refused creation that offers the entities matching its search again
        ("/ui/staff/assignments", {"username": "a\x00", "role": "CUSTOMER.OWNER", "scope": f"customer:{uuid4()}"}),
        ("/ui/tokens/new", {"name": "", "scopes": "PROJECT.UPDATE", "expires_on": "2000-01-01", "q": "a\x00"}),
    ]
    async with running(app):
        client = await _signed_in(app, "root")
        try:
            statuses = {
                f"GET {path} {query}": (await client.get(path, params=query)).status_code for path, query in queries
            }
            for path, data in forms:
                statuses[f"POST {path} {data}"] = (await post_form(client, path, path, data)).status_code
        finally:
            await client.aclose()
    assert statuses == dict.fromkeys(statuses, 400)


async def test_error_pages_forbid_framing_caching_and_sniffing_like_every_page(app: Litestar, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    async with running(app):
        client = await _signed_in(app, "alice")
        try:
            page = await client.get("/ui/tokens")
            errors = [
                await client.get(f"/ui/tokens/{uuid4()}/revoke"),  # 404: no such token of hers
                await client.get("/ui/staff/users"),  # 403: not staff
                await client.get("/ui/activity", params={"page": "0"}),  # 400
            ]
        finally:
            await client.aclose()
    assert [response.status_code for response in errors] == [404, 403, 400]
    assert "<p>You do not have permission to perform this action.</p>" in errors[1].text  # a sentence, not letters
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "Cache-Control"):
        assert [response.headers.get(name) for response in errors] == [page.headers[name]] * len(errors), name


@pytest.mark.parametrize("settings", [{"TOKENGATE_SECURITY__TRUSTED_PROXIES": '["127.0.0.1/32"]'}], indirect=True)
async def test_page_cookies_are_secure_behind_a_trusted_tls_proxy_only(app: Litestar, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD)

    async def sign_in_cookies(peer: str) -> list[str]:
        client = http_client(app, client_ip=peer)
        client.headers["X-Forwarded-Proto"] = "https"  # the proxy terminated TLS; from anyone else: a claim
        try:
            form = await client.get("/ui/sign-in")
            data = {"_csrf_token": csrf_of(form.text), "username": "alice", "password": PASSWORD}
            # the browser sends a Secure cookie back to the proxy over TLS; the test client would not over http
            csrf_cookie = form.headers["set-cookie"].split(";", 1)[0]
            client.cookies.clear()
            signed_in = await client.post("/ui/sign-in", data=data, headers={"Cookie": csrf_cookie})
        finally:
            await client.aclose()
        assert signed_in.status_code == 302, signed_in.text
        return [*form.headers.get_list("set-cookie"), *signed_in.headers.get_list("set-cookie")]

    async with running(app):
        behind_proxy = await sign_in_cookies("127.0.0.1")
        direct = await sign_in_cookies("203.0.113.9")
    assert [cookie.split("=", 1)[0] for cookie in behind_proxy] == ["tokengate_csrf", "tokengate_session"]
    assert all("; Secure" in cookie for cookie in behind_proxy)
    assert not any("; Secure" in cookie for cookie in direct)


@pytest.mark.parametrize("settings", [{"TOKENGATE_TOKENS__ROTATION_GRACE_SECONDS": "3600"}], indirect=True)
async def test_deactivation_ends_rotated_out_tokens_in_grace_for_good(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    staff = await make_user(runtime, "root", staff=True)
    staff_key = await make_key(runtime, staff)
    alice = await make_user(runtime, "alice")
    await grant(runtime, alice, "CUSTOMER.OWNER", await make_entity(runtime, "customer", "Acme"))
    body = {
        "name": "ci",
        "scopes": ["PROJECT.UPDATE"],
        "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
    }
    created = await client.post(PATS, json=body, headers=auth(await make_key(runtime, alice)))
    assert created.status_code == 201, created.text
    old = auth(created.json()["token"])
    rotated = await client.post(f"{PATS}{created.json()['uuid']}/rotate/", headers=auth(await make_key(runtime, alice)))
    assert rotated.status_code == 201, rotated.text
    assert (await client.get(f"{PATS}self/", headers=old)).status_code == 200  # in its grace
    for active in (False, True):  # deactivated (every token ends), then reactivated
        changed = await client.patch(
            f"/api/users/{alice.uuid.hex}/", json={"is_active": active}, headers=auth(staff_key)
        )
        assert changed.status_code == 200, changed.text
    assert (await client.get(f"{PATS}self/", headers=old)).status_code == 401
    assert (await client.get(f"{PATS}self/", headers=auth(rotated.json()["token"]))).status_code == 401


async def test_after_sign_in_next_never_leads_out_of_the_pages(app: Litestar, runtime: Runtime) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    targets = {
        "/ui/activity?page=2": "/ui/activity?page=2",
        "//evil.example/ui/": "/ui/tokens",
        "https://evil.example/ui/": "/ui/tokens",
        "/ui/..//evil.example": "/ui/tokens",  # a browser resolves it to //evil.example on this host
        "/ui/%2e%2e/api/users/": "/ui/tokens",  # %2e is a dot in a path segment
        "/ui/./../schema": "/ui/tokens",
        "/ui\\evil.example": "/ui/tokens",
    }
    landed = {}
    async with running(app):
        for target in targets:
            client = http_client(app)
            try:
                form = {"username": "alice", "password": PASSWORD, "next": target}
                landed[target] = (await post_form(client, "/ui/sign-in", "/ui/sign-in", form)).headers["location"]
            finally:
                await client.aclose()
    assert landed == targets


async def test_a_leak_report_whose_source_holds_control_characters_is_a_400_that_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    alice = await make_user(runtime, "alice")
    await grant(runtime, alice, "CUSTOMER.OWNER", await make_entity(runtime, "customer", "Acme"))
    key = await make_key(runtime, alice)
    body = {
        "name": "ci",
        "scopes": ["PROJECT.UPDATE"],
        "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
    }
    token = (await client.post(PATS, json=body, headers=auth(key))).json()["token"]
    # a bidirectional override makes the owner's audit event show another place than the one reported
    for source in ("https://paste.example/\u202eexe.txt", "x\x00y", "line\nbreak"):
        answer = await client.post("/api/credentials/revoke/", json={"credentials": [token], "source": source})
        assert answer.status_code == 400, source
        assert list(answer.json()) == ["source"], source
    assert (await client.get(f"{PATS}self/", headers=auth(token))).status_code == 200
    events = (
        await client.get("/api/events/", params={"event_type": "token_reported_leaked"}, headers=auth(key))
    ).json()
    assert events == []


async def test_the_sign_in_form_takes_the_api_logins_limits_and_never_floods_the_audit_log(
    app: Litestar, runtime: Runtime
) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    staff = await make_user(runtime, "root", staff=True)
    async with running(app):
        client = http_client(app)
        try:
            attempts = [
                {"username": "é" * 100_000, "password": "guess"},  # one attempt, 900 kB of audit event
                {"username": "alice", "password": "x" * 100_000},
                {"username": "alice", "password": "p\x00ss"},
            ]
            answers = [await post_form(client, "/ui/sign-in", "/ui/sign-in", data) for data in attempts]
            events = await client.get("/api/events/", headers=auth(await make_key(runtime, staff)))
        finally:
            await client.aclose()
    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert max(len(answer.text) for answer in answers) < 20_000  # nothing echoed back at length either
    assert [event["event_type"] for event in events.json() if event["event_type"].startswith("auth_login")] == []


@pytest.mark.parametrize("settings", [{"TOKENGATE_LEAKS__REQUESTS_PER_MINUTE": "2"}], indirect=True)
async def test_the_leak_report_throttle_counts_an_ipv6_subscriber_by_its_64(app: Litestar) -> None:
    """As the login throttle does: one subscriber holds a whole /64, 2**64 addresses."""

    async def report(peer: str) -> int:
        async with http_client(app, client_ip=peer) as client:
            response = await client.post("/api/credentials/revoke/", json={"credentials": ["nothing"]})
            return response.status_code

    async with running(app):
        same_subscriber = [await report(f"2001:db8:1:2::{n}") for n in range(1, 4)]
        another = await report("2001:db8:1:3::1")
    assert same_subscriber == [202, 202, 429]
    assert another == 202


async def test_the_policy_invariants_name_their_files_as_decisions_do_never_by_the_servers_path(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    key = await make_key(runtime, await make_user(runtime, "alice"))
    response = await client.get("/api/policy/invariants/", headers=auth(key))
    directory = Path(runtime.settings.policy_dir)
    assert response.status_code == 200
    assert str(directory.parent) not in response.text
    assert response.json()["file"] == f"{directory.name}/invariants.yaml"
