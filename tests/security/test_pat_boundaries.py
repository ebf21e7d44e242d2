"""What a Personal Access Token may never do, and what a caller may never learn.

- No PAT, staff's with ``STAFF.ACCESS`` included, mints or resets a credential: a narrow token (one scope, one
  network) would otherwise launder itself into unrestricted ones.
- Rotation is issuance: it obeys ``tokens.pat_enabled`` and the owner's ``can_use_personal_access_tokens``.
- An entity a non-staff caller holds nothing on, above or below answers exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from service.auth_tokens.models import AuthToken
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.security.guards import PAT_CANNOT_MANAGE_CREDENTIALS
from service.users.models import User
from tests.support.factories import auth, find_user, grant, make_entity, token_of, user_with_key

PATS = "/api/personal-access-tokens/"
CHECK = "/api/authz/check/"
REFUSED = {"detail": PAT_CANNOT_MANAGE_CREDENTIALS}


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def _create_pat(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    payload = {"name": "narrow", "scopes": ["PROJECT.UPDATE"], "expires_at": _in_days(7), **body}
    response = await client.post(PATS, json=payload, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


async def test_no_pat_mints_or_resets_a_credential(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, staff_key = await user_with_key(runtime, "root", staff=True, password="root-password-1")
    victim, victim_key = await user_with_key(runtime, "victim")
    narrow = await _create_pat(sclient, staff_key, scopes=["STAFF.ACCESS"], allowed_networks=["127.0.0.0/8"])
    as_pat = auth(narrow["token"])
    victim_token = await token_of(runtime, victim)
    assert victim_token is not None
    staff_hash = (await find_user(runtime, "root")).password_hash
    attempts: list[tuple[str, str, Any]] = [
        ("POST", "/api/users/", {"username": "backdoor", "password": "backdoor-pass", "is_staff": True}),
        ("PATCH", f"/api/users/{staff.uuid.hex}/", {"password": "owner-changed-1"}),
        ("PATCH", f"/api/users/{victim.uuid.hex}/", {"password": "victim-changed-1", "first_name": "V"}),
        ("POST", f"/api/users/auth_tokens/{victim_token.id}/regenerate", None),
        ("DELETE", f"/api/auth-tokens/{victim.id}/", None),
        ("POST", PATS, {"name": "wide", "scopes": ["STAFF.ACCESS"], "expires_at": _in_days(300)}),
    ]
    for method, path, body in attempts:
        response = await sclient.request(method, path, json=body, headers=as_pat)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json() == REFUSED, (method, path)
    # nothing changed: no user, same password hashes, the victim's key still works, no second PAT
    async with runtime.session() as session:
        assert await session.scalar(select(func.count()).select_from(User).where(User.username == "backdoor")) == 0
        assert await session.scalar(select(func.count()).select_from(PersonalAccessToken)) == 1
        assert (await session.scalar(select(AuthToken.key_hash).where(AuthToken.user_id == victim.id))) == (
            victim_token.key_hash
        )
    assert (await find_user(runtime, "root")).password_hash == staff_hash
    assert (await find_user(runtime, "victim")).first_name == ""
    assert (await sclient.get(f"/api/users/{victim.uuid.hex}/", headers=auth(victim_key))).status_code == 200
    # what creates no credential stays open to the staff PAT
    plain = await sclient.post("/api/users/", json={"username": "nopassword"}, headers=as_pat)
    assert plain.status_code == 201, plain.text
    renamed = await sclient.patch(f"/api/users/{victim.uuid.hex}/", json={"first_name": "V"}, headers=as_pat)
    assert renamed.status_code == 200, renamed.text
    # and a password login's token may do all of it
    for method, path, body in attempts:
        response = await sclient.request(method, path, json=body, headers=auth(staff_key))
        assert response.status_code in (200, 201, 204), (method, path, response.text)


@pytest.mark.parametrize("switch", ["user flag", "server switch"])
async def test_rotation_obeys_the_pat_switches(sclient: httpx.AsyncClient, runtime: Runtime, switch: str) -> None:
    owner, key = await user_with_key(runtime, "owner")
    await grant(runtime, owner, "CUSTOMER.OWNER", await make_entity(runtime, "customer", "ACME"))
    created = await _create_pat(sclient, key)
    if switch == "user flag":
        staff_key = (await user_with_key(runtime, "root", staff=True))[1]
        response = await sclient.patch(
            f"/api/users/{owner.uuid.hex}/", json={"can_use_personal_access_tokens": False}, headers=auth(staff_key)
        )
        assert response.status_code == 200
    else:
        runtime.settings.tokens.pat_enabled = False
    for _ in range(2):
        rotated = await sclient.post(f"{PATS}{created['uuid']}/rotate/", headers=auth(key))
        assert rotated.status_code == 400, rotated.text
        assert "token" not in rotated.json()
    async with runtime.session() as session:
        rows = list(await session.scalars(select(PersonalAccessToken)))
    assert len(rows) == 1
    assert rows[0].is_active
    assert rows[0].uuid == UUID(created["uuid"])


async def _check(client: httpx.AsyncClient, key: str, entity_type: str, uuid: str) -> httpx.Response:
    body = {"permission": "PROJECT.UPDATE", "entity": {"type": entity_type, "uuid": uuid}}
    return await client.post(CHECK, json=body, headers=auth(key))


def _shape(response: httpx.Response, uuid: str) -> tuple[int, str, dict[str, str]]:
    """What a caller sees, with the uuid they sent taken out."""
    return (
        response.status_code,
        response.text.replace(uuid, "<uuid>"),
        {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-length", "date", "x-request-id")
        },
    )


async def test_unrelated_entities_answer_exactly_like_unknown_ones(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    manager, key = await user_with_key(runtime, "manager")
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    customer = await make_entity(runtime, "customer", "ACME")
    project = await make_entity(runtime, "project", "Apollo", parent=customer)
    resource = await make_entity(runtime, "resource", "vm", parent=project)
    sibling = await make_entity(runtime, "project", "Gemini", parent=customer)
    stranger = await make_entity(runtime, "customer", "Globex")
    stranger_project = await make_entity(runtime, "project", "Hidden", parent=stranger)
    await grant(runtime, manager, "PROJECT.MANAGER", project)
    bound = (await _create_pat(sclient, key, allowed_scopes=[{"type": "project", "uuid": str(project.uuid)}]))["token"]

    for who in (key, bound):
        unknown = str(uuid4())
        expected = _shape(await _check(sclient, who, "project", unknown), unknown)
        assert expected[0] == 404
        for hidden in (sibling, stranger_project):
            assert _shape(await _check(sclient, who, "project", str(hidden.uuid)), str(hidden.uuid)) == expected
        unknown_customer = str(uuid4())
        expected_customer = _shape(await _check(sclient, who, "customer", unknown_customer), unknown_customer)
        assert _shape(await _check(sclient, who, "customer", str(stranger.uuid)), str(stranger.uuid)) == (
            expected_customer
        )
        # on, above and below what the manager holds the entity is answered for
        for entity_type, near in (("project", project), ("customer", customer), ("resource", resource)):
            response = await _check(sclient, who, entity_type, str(near.uuid))
            assert response.status_code == 200, (entity_type, response.text)
    assert (await _check(sclient, key, "project", str(project.uuid))).json()["allowed"] is True
    # staff learn of every entity
    for hidden in (sibling, stranger_project):
        assert (await _check(sclient, staff_key, "project", str(hidden.uuid))).status_code == 200
    # binding a new token to a hidden entity is refused like binding it to an unknown one
    messages = []
    for target in (str(sibling.uuid), str(uuid4())):
        body = {
            "name": "x",
            "scopes": ["PROJECT.UPDATE"],
            "expires_at": _in_days(1),
            "allowed_scopes": [{"type": "project", "uuid": target}],
        }
        response = await sclient.post(PATS, json=body, headers=auth(key))
        assert response.status_code == 400
        messages.append(response.text.replace(target, "<uuid>"))
    assert messages[0] == messages[1]
