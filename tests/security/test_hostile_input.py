"""Hostile input on every endpoint: each is a 400 naming the field, changes nothing, and is never a 500.

Classes: NUL and other control characters in every text field and filter, datetimes whose UTC form overflows,
JSON nested deeper than any decoder's stack. Proxy chains and IPv6 scope ids: ``test_client_address.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

import service.models as models
from service.runtime import Runtime
from tests.support.factories import auth
from tests.support.world import Identities, build_identities

NUL, BELL, NEWLINE_END, BIDI_OVERRIDE, DEL = "a\x00b", "a\x07b", "ab\n", "a\u202eb", "a\x7fb"
NAME_ATTACKS = [NUL, BELL, NEWLINE_END, BIDI_OVERRIDE, DEL]
SECRET_ATTACKS = [NUL]  # passwords: anything but NUL
EXTREMES = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]
DAY_EXTREMES = ["9999-12-31", "0001-01-01"]
DEEP = 100_000

Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments
Build = Callable[[Identities, Any], Request]


def _future(days: int = 5) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _pat_body(**fields: Any) -> dict[str, Any]:
    return {"name": "ci", "scopes": ["PROJECT.UPDATE"], "expires_at": _future(), **fields}


def _grant_body(ids: Identities, **fields: Any) -> dict[str, Any]:
    user = ids.user_uuid
    return {"user": user, "role": "PROJECT.MANAGER", "scope": {"type": "project", "uuid": ids.project}, **fields}


def body(method: str, path: str, make: Callable[[Identities, Any], dict[str, Any]]) -> Build:
    return lambda ids, value: (method, path.format(ids=ids), {"json": make(ids, value)})


def query(path: str, name: str) -> Build:
    return lambda ids, value: ("GET", path, {"params": {name: value}})


# (field the 400 must name, how to send a value there, values to send)
TEXT_FIELDS: list[tuple[str, Build, list[str]]] = [
    (
        "username",
        body("POST", "/api-auth/password/", lambda i, v: {"username": v, "password": "pw-123456"}),
        NAME_ATTACKS,
    ),
    (
        "password",
        body("POST", "/api-auth/password/", lambda i, v: {"username": "owner", "password": v}),
        SECRET_ATTACKS,
    ),
    ("username", body("POST", "/api/users/", lambda i, v: {"username": v}), NAME_ATTACKS),
    (
        "password",
        body("POST", "/api/users/", lambda i, v: {"username": "fresh", "password": v + "-long-pw"}),
        SECRET_ATTACKS,
    ),
    *(
        (name, body("POST", "/api/users/", lambda i, v, n=name: {"username": "fresh", n: v}), NAME_ATTACKS)
        for name in ("first_name", "last_name", "email", "mobile_number")
    ),
    *(
        (name, body("PATCH", "/api/users/{ids.user_uuid}/", lambda i, v, n=name: {n: v}), NAME_ATTACKS)
        for name in ("first_name", "last_name", "email", "mobile_number")
    ),
    (
        "password",
        body("PATCH", "/api/users/{ids.user_uuid}/", lambda i, v: {"password": v + "-long-pw"}),
        SECRET_ATTACKS,
    ),
    ("type", body("POST", "/api/entities/", lambda i, v: {"type": v, "name": "n"}), NAME_ATTACKS),
    ("name", body("POST", "/api/entities/", lambda i, v: {"type": "customer", "name": v}), NAME_ATTACKS),
    ("name", body("PATCH", "/api/entities/{ids.project}/", lambda i, v: {"name": v}), NAME_ATTACKS),
    ("role", body("POST", "/api/role-assignments/", lambda i, v: _grant_body(i, role=v)), NAME_ATTACKS),
    (
        "scope.type",
        body("POST", "/api/role-assignments/", lambda i, v: _grant_body(i, scope={"type": v, "uuid": i.project})),
        NAME_ATTACKS,
    ),
    ("permission", body("POST", "/api/authz/check/", lambda i, v: {"permission": v}), NAME_ATTACKS),
    (
        "entity.type",
        body(
            "POST",
            "/api/authz/check/",
            lambda i, v: {"permission": "PROJECT.UPDATE", "entity": {"type": v, "uuid": i.project}},
        ),
        NAME_ATTACKS,
    ),
    ("token", body("POST", "/api/authz/introspect/", lambda i, v: {"token": v}), NAME_ATTACKS),
    ("client_ip", body("POST", "/api/authz/introspect/", lambda i, v: {"token": i.pat, "client_ip": v}), NAME_ATTACKS),
    (
        "permission",
        body("POST", "/api/authz/introspect/", lambda i, v: {"token": i.pat, "permission": v}),
        NAME_ATTACKS,
    ),
    ("name", body("POST", "/api/personal-access-tokens/", lambda i, v: _pat_body(name=v)), NAME_ATTACKS),
    ("scopes[0]", body("POST", "/api/personal-access-tokens/", lambda i, v: _pat_body(scopes=[v])), NAME_ATTACKS),
    (
        "allowed_scopes[0].type",
        body(
            "POST",
            "/api/personal-access-tokens/",
            lambda i, v: _pat_body(allowed_scopes=[{"type": v, "uuid": i.project}]),
        ),
        NAME_ATTACKS,
    ),
    (
        "allowed_networks[0]",
        body("POST", "/api/personal-access-tokens/", lambda i, v: _pat_body(allowed_networks=["10.0.0.0/8" + v])),
        NAME_ATTACKS,
    ),
    (
        "allowed_networks[0]",
        body(
            "POST",
            "/api/personal-access-tokens/{ids.pat_uuid}/set_network_acl/",
            lambda i, v: {"allowed_networks": [v]},
        ),
        NAME_ATTACKS,
    ),
    ("username", query("/api/users/", "username"), NAME_ATTACKS),
    ("type", query("/api/entities/", "type"), NAME_ATTACKS),
    ("event_type", query("/api/events/", "event_type"), NAME_ATTACKS),
    ("role", query("/api/role-assignments/", "role"), NAME_ATTACKS),
    ("search", query("/api/users/auth_tokens", "search"), NAME_ATTACKS),
]

TIME_FIELDS: list[tuple[str, Build, list[str]]] = [
    ("expires_at", body("POST", "/api/personal-access-tokens/", lambda i, v: _pat_body(expires_at=v)), EXTREMES),
    (
        "expiration_time",
        body("POST", "/api/role-assignments/", lambda i, v: _grant_body(i, expiration_time=v)),
        EXTREMES,
    ),
]
DATE_FILTERS = ("created_date", "updated_date", "created_from", "created_to", "updated_from", "updated_to")

JSON_ENDPOINTS = [
    ("POST", "/api-auth/password/"),
    ("POST", "/api/users/"),
    ("PATCH", "/api/users/{ids.user_uuid}/"),
    ("POST", "/api/entities/"),
    ("PATCH", "/api/entities/{ids.project}/"),
    ("POST", "/api/role-assignments/"),
    ("POST", "/api/authz/check/"),
    ("POST", "/api/authz/introspect/"),
    ("POST", "/api/personal-access-tokens/"),
    ("POST", "/api/personal-access-tokens/{ids.pat_uuid}/set_network_acl/"),
]


async def _row_counts(runtime: Runtime) -> dict[str, int]:
    async with runtime.session() as session:
        return {
            name: int(await session.scalar(select(func.count()).select_from(getattr(models, name))) or 0)
            for name in models.__all__
        }


async def _attack(client: httpx.AsyncClient, ids: Identities, who: str, request: Request) -> httpx.Response:
    method, path, kwargs = request
    headers = {} if path.startswith("/api-auth/") else auth(ids.staff_key if who == "staff" else ids.user_key)
    return await client.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize("table", ["text", "time"])
async def test_every_hostile_field_is_a_400_naming_it(sclient: httpx.AsyncClient, runtime: Runtime, table: str) -> None:
    ids = await build_identities(runtime, sclient)
    before = await _row_counts(runtime)
    misses = []
    for field, build, values in TEXT_FIELDS if table == "text" else TIME_FIELDS:
        for value in values:
            request = build(ids, value)
            response = await _attack(sclient, ids, "staff", request)
            if response.status_code != 400 or field not in response.json():
                misses.append((request[0], request[1], field, repr(value), response.status_code, response.text[:200]))
    assert not misses, "\n".join(map(str, misses))
    assert await _row_counts(runtime) == before


async def test_date_filters_at_the_ends_of_the_calendar_filter(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    """Every date a client can send is a whole day the filter can express: 200, never a 500."""
    ids = await build_identities(runtime, sclient)
    for name in DATE_FILTERS:
        for day in DAY_EXTREMES:
            response = await sclient.get("/api/users/auth_tokens", params={name: day}, headers=auth(ids.staff_key))
            assert response.status_code == 200, (name, day, response.text)


async def test_control_characters_get_words_not_a_regex(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    ids = await build_identities(runtime, sclient)
    response = await sclient.post("/api/entities/", json={"type": "customer", "name": NUL}, headers=auth(ids.staff_key))
    assert response.json() == {"name": ["Control characters are not allowed."]}
    response = await sclient.post("/api-auth/password/", json={"username": "owner", "password": NUL})
    assert response.json() == {"password": ["Null characters are not allowed."]}
    fine = await sclient.post(
        "/api/entities/", json={"type": "customer", "name": "Café ☕ 東京"}, headers=auth(ids.staff_key)
    )
    assert fine.status_code == 201, fine.text


async def test_deep_nesting_is_a_400_on_every_json_endpoint(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    ids = await build_identities(runtime, sclient)
    before = await _row_counts(runtime)
    deep = b"[" * DEEP + b"]" * DEEP
    for method, template in JSON_ENDPOINTS:
        path = template.format(ids=ids)
        for content in (deep, b'{"name": ' + deep + b"}", b'{"a":' * DEEP + b"1" + b"}" * DEEP):
            headers = {"Content-Type": "application/json"}
            if not path.startswith("/api-auth/"):
                headers |= auth(ids.staff_key)
            response = await sclient.request(method, path, content=content, headers=headers)
            assert response.status_code == 400, (method, path, response.text[:200])
            assert response.json() == {"non_field_errors": ["The JSON body is nested too deeply."]}
    assert await _row_counts(runtime) == before


async def test_the_page_sign_in_form_refuses_control_characters_without_a_500(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    """The form has no schema: a username no user can have is bad credentials, never looked up (NUL: PostgreSQL)."""
    from tests.support.ui import post_form

    for username in (NUL, NEWLINE_END, BIDI_OVERRIDE):
        response = await post_form(sclient, "/ui/sign-in", "/ui/sign-in", {"username": username, "password": "pw"})
        assert response.status_code == 401, (repr(username), response.status_code)
