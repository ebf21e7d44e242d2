"""Secrets hygiene: after a plaintext token or password has been handed out once, it appears nowhere else.

A representative run — logins (good and bad), PAT create/rotate/list/retrieve/ACL/revoke, events, admin listings,
introspection, and errors — with every logger captured at DEBUG. Every response body and header after a secret's
creation response, every log record (message, arguments and ``extra``) and every stored event is searched for
every secret. The legacy key is re-shown by login by design (Waldur behaviour), so login responses are exempt
for it, and nothing else is.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.events.models import Event
from service.runtime import Runtime
from tests.support.factories import grant, make_entity, make_user
from tests.support.security import STATS

PASSWORD = "hunter2-but-longer"
STAFF_PASSWORD = "staff-password-42"
WRONG_PASSWORD = "wrong-password-99"
_STANDARD = set(vars(logging.makeLogRecord({})))


def _record_text(record: logging.LogRecord) -> str:
    extra = {key: value for key, value in vars(record).items() if key not in _STANDARD}
    parts = [str(record.msg), repr(record.args), repr(extra)]
    try:
        parts.append(record.getMessage())
    except (TypeError, ValueError):
        pass
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(repr(record.exc_info[1]))
    return " ".join(parts)


class Recorder:
    """Every response seen, in order, with which secrets had been issued before it."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {PASSWORD: "password", STAFF_PASSWORD: "password", WRONG_PASSWORD: "password"}
        self.exempt: list[tuple[str, str]] = []  # (path, secret) responses allowed to carry the secret
        self.leaks: list[str] = []

    def issued(self, secret: str, what: str) -> None:
        self.secrets[secret] = what

    async def check(self, response: httpx.Response) -> None:
        await response.aread()
        text = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        for secret, what in self.secrets.items():
            if secret in text and (response.request.url.path, secret) not in self.exempt:
                self.leaks.append(f"{what} in {response.request.method} {response.request.url.path}")


async def test_no_secret_appears_after_its_creation_response(
    app: Any, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.app import http_client, running

    caplog.set_level(logging.DEBUG)  # the root logger: every logger, every level
    recorder = Recorder()
    pats = "/api/personal-access-tokens/"
    expires = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    staff = await make_user(runtime, "root", staff=True, password=STAFF_PASSWORD)
    owner = await make_user(runtime, "owner", password=PASSWORD)
    customer = await make_entity(runtime, "customer", "ACME")
    project = await make_entity(runtime, "project", "Apollo", parent=customer)
    assignment = await grant(runtime, owner, "CUSTOMER.OWNER", customer, actor=staff)

    async with running(app), http_client(app) as client:
        client.event_hooks["response"].append(recorder.check)

        async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            response = await client.request(method, path, **kwargs)
            STATS.requests += 1
            assert response.status_code < 500, response.text
            return response

        # logins: a failure, then successes (the key is issued by the first and re-shown by the second)
        assert (
            await call("POST", "/api-auth/password/", json={"username": "owner", "password": WRONG_PASSWORD})
        ).status_code == 401
        key = (await call("POST", "/api-auth/password/", json={"username": "owner", "password": PASSWORD})).json()[
            "token"
        ]
        recorder.issued(key, "owner's legacy key")
        recorder.exempt.append(("/api-auth/password/", key))
        assert (await call("POST", "/api-auth/password/", json={"username": "owner", "password": PASSWORD})).json()[
            "token"
        ] == key
        staff_key = (
            await call("POST", "/api-auth/password/", json={"username": "root", "password": STAFF_PASSWORD})
        ).json()["token"]
        recorder.issued(staff_key, "staff legacy key")
        recorder.exempt.append(("/api-auth/password/", staff_key))
        owner_h, staff_h = {"Authorization": f"Token {key}"}, {"Authorization": f"Token {staff_key}"}

        # PATs: create (plaintext once), use, rotate, ACL, list, retrieve, revoke
        created = await call(
            "POST",
            pats,
            headers=owner_h,
            json={
                "name": "ci",
                "scopes": ["PROJECT.UPDATE"],
                "expires_at": expires,
                "allowed_scopes": [{"type": "project", "uuid": str(project.uuid)}],
            },
        )
        assert created.status_code == 201
        assert created.headers["Cache-Control"] == "no-store"
        first = created.json()
        recorder.issued(first["token"], "PAT")
        pat_h = {"Authorization": f"Bearer {first['token']}"}
        assert (await call("GET", pats, headers=pat_h)).status_code == 200
        await call(
            "POST",
            "/api/authz/check/",
            headers=pat_h,
            json={"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": str(project.uuid)}},
        )
        await call("GET", pats, headers={**pat_h, "X-Forwarded-For": "198.51.100.9"})  # used from a new IP
        rotated = await call("POST", f"{pats}{first['uuid']}/rotate/", headers=owner_h)
        assert rotated.status_code == 201
        second = rotated.json()
        recorder.issued(second["token"], "rotated PAT")
        await call(
            "POST",
            f"{pats}{second['uuid']}/set_network_acl/",
            headers=owner_h,
            json={"allowed_networks": ["10.0.0.0/8"]},
        )
        await call("GET", pats, headers={"Authorization": f"Token {second['token']}"})  # denied by the ACL
        await call("GET", pats, headers={"Authorization": f"Token {first['token']}"})  # rotated away
        await call("GET", pats, headers=owner_h)
        await call("GET", f"{pats}{second['uuid']}/", headers=owner_h)
        await call("GET", pats, headers=staff_h)
        await call("POST", "/api/authz/introspect/", headers=staff_h, json={"token": second["token"]})
        await call("POST", "/api/authz/introspect/", headers=staff_h, json={"token": first["token"]})
        # errors that echo input: a bad create, a PAT managing PATs, unknown ids
        await call("POST", pats, headers=owner_h, json={"name": second["token"], "scopes": [key], "expires_at": "soon"})
        await call(
            "POST",
            pats,
            headers={"Authorization": f"Token {second['token']}"},
            json={"name": "x", "scopes": ["PROJECT.UPDATE"], "expires_at": expires},
        )
        await call("GET", f"{pats}{first['token']}/", headers=owner_h)
        await call("PATCH", f"/api/users/{owner.uuid}/", headers=staff_h, json={"password": "new-" + PASSWORD})
        recorder.issued("new-" + PASSWORD, "password")
        # admin listings and events
        # staff may paste a full key into the admin listing's search (found through its hash); the Link header then
        # repeats the caller's own query string back to them — the only response allowed to carry it
        recorder.exempt.append(("/api/users/auth_tokens", key))
        for path in [
            "/api/auth-tokens/",
            "/api/users/auth_tokens",
            "/api/users/",
            "/api/role-assignments/",
            "/api/events/",
        ]:
            assert (
                await call("GET", path, headers=staff_h, params={"search": key} if "auth_tokens" in path else None)
            ).status_code == 200
        await call("GET", "/api/events/", headers=owner_h)
        regenerated = await call("POST", "/api/users/auth_tokens/1/regenerate", headers=staff_h)
        assert regenerated.status_code in (200, 404)
        await call("DELETE", f"/api/role-assignments/{assignment.uuid}/", headers=staff_h)
        await call("DELETE", f"{pats}{second['uuid']}/", headers=owner_h)
        await runtime.usage.flush()

    async with runtime.session() as session:
        events = list(await session.scalars(select(Event)))
    event_text = " ".join(f"{e.event_type} {e.message} {e.context!r}" for e in events)
    # httpx/httpcore are this test's own client logging the URLs it was told to request, not the service
    service_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    log_text = "\n".join(_record_text(record) for record in service_records)
    assert len(service_records) > 10
    assert len(events) > 10
    for secret, what in recorder.secrets.items():
        if secret in event_text:
            recorder.leaks.append(f"{what} in a stored event")
        if secret in log_text:
            recorder.leaks.append(f"{what} in a log record")
    STATS.secrets_found += len(recorder.leaks)
    assert recorder.leaks == [], "\n".join(recorder.leaks)
