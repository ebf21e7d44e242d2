"""HTTP contract of ``/api/role-assignments/``: staff grant and revoke roles."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select

from service.authz.models import RoleAssignment
from service.entities.models import Entity
from service.runtime import Runtime
from service.users.models import User
from tests.support.authz import check, denied
from tests.support.factories import grant, make_user
from tests.support.world import Caller, Tree, make_caller

URL = "/api/role-assignments/"


def grant_body(user: User, role: str, entity: Entity, **extra: Any) -> dict[str, Any]:
    """The JSON body granting ``role`` on ``entity`` to ``user``."""
    return {"user": str(user.uuid), "role": role, "scope": {"type": entity.type, "uuid": str(entity.uuid)}, **extra}


async def test_grant(client: AsyncClient, staff: Caller, tree: Tree, alice: Caller) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    response = await client.post(
        URL,
        headers=staff.headers,
        json=grant_body(alice.user, "PROJECT.ADMIN", tree.web, expiration_time=expires.isoformat()),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "url",
        "uuid",
        "user",
        "user_username",
        "role",
        "scope",
        "expiration_time",
        "is_active",
        "created",
    }
    assert body["url"] == f"http://testserver.local{URL}{body['uuid']}/"
    assert body["user"] == str(alice.user.uuid)
    assert body["user_username"] == "alice"
    assert body["role"] == "PROJECT.ADMIN"
    assert body["scope"] == {"type": "project", "uuid": str(tree.web.uuid), "name": "Web"}
    assert datetime.fromisoformat(body["expiration_time"]) == expires
    assert body["is_active"] is True
    assert (await check(client, alice, "RESOURCE.UPDATE", tree.web_vm))["allowed"] is True


async def test_grant_with_a_naive_expiration_time_reads_it_as_utc(
    client: AsyncClient,
    staff: Caller,
    tree: Tree,
    alice: Caller,
) -> None:
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    response = await client.post(
        URL,
        headers=staff.headers,
        json=grant_body(alice.user, "PROJECT.ADMIN", tree.web, expiration_time=naive.isoformat()),
    )
    assert response.status_code == 201, response.text
    assert datetime.fromisoformat(response.json()["expiration_time"]) == naive.replace(tzinfo=UTC)
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None)
    refused = await client.post(
        URL,
        headers=staff.headers,
        json=grant_body(alice.user, "PROJECT.MEMBER", tree.web, expiration_time=past.isoformat()),
    )
    assert refused.status_code == 400
    assert list(refused.json()) == ["expiration_time"]


@pytest.mark.parametrize(
    ("role", "target", "field"),
    [
        ("PROJECT.OWNER", "web", "role"),  # not declared in policies/roles.csv
        ("project.admin", "web", "role"),  # names are case-sensitive
        ("CUSTOMER.OWNER", "web", "scope"),  # a customer role on a project
        ("PROJECT.ADMIN", "acme", "scope"),  # a project role on a customer
        ("PROJECT.MEMBER", "web_vm", "scope"),
        ("OFFERING.MANAGER", "acme", "scope"),
        ("CUSTOMER.SUPPORT", "shop", "scope"),
    ],
)
async def test_grant_refuses_roles_the_policy_does_not_declare_there(
    client: AsyncClient,
    staff: Caller,
    tree: Tree,
    alice: Caller,
    role: str,
    target: str,
    field: str,
) -> None:
    response = await client.post(URL, headers=staff.headers, json=grant_body(alice.user, role, tree[target]))
    assert response.status_code == 400, response.text
    assert list(response.json()) == [field]
    assert (await client.head(URL, headers=staff.headers)).headers["X-Result-Count"] == "0"


async def test_grant_refuses_unknown_user_and_entity(
    client: AsyncClient,
    staff: Caller,
    tree: Tree,
    alice: Caller,
) -> None:
    ghost = {
        "user": str(uuid.uuid4()),
        "role": "PROJECT.ADMIN",
        "scope": {"type": "project", "uuid": str(tree.web.uuid)},
    }
    unknown_user = await client.post(URL, headers=staff.headers, json=ghost)
    assert unknown_user.status_code == 400
    assert list(unknown_user.json()) == ["user"]
    nowhere = {
        "user": str(alice.user.uuid),
        "role": "PROJECT.ADMIN",
        "scope": {"type": "project", "uuid": str(uuid.uuid4())},
    }
    unknown_entity = await client.post(URL, headers=staff.headers, json=nowhere)
    assert unknown_entity.status_code == 400
    assert list(unknown_entity.json()) == ["scope"]
    wrong_type = {
        "user": str(alice.user.uuid),
        "role": "PROJECT.ADMIN",
        "scope": {"type": "resource", "uuid": str(tree.web.uuid)},
    }  # the uuid is a project's
    mismatched = await client.post(URL, headers=staff.headers, json=wrong_type)
    assert mismatched.status_code == 400
    assert list(mismatched.json()) == ["scope"]
    all_wrong = await client.post(
        URL,
        headers=staff.headers,
        json={"user": str(uuid.uuid4()), "role": "NOPE", "scope": {"type": "project", "uuid": str(uuid.uuid4())}},
    )
    assert all_wrong.status_code == 400
    assert set(all_wrong.json()) == {"user", "role", "scope"}


@pytest.mark.parametrize("delta", [timedelta(seconds=-1), timedelta(days=-365), timedelta(0)])
async def test_grant_refuses_a_past_expiration_time(
    client: AsyncClient,
    staff: Caller,
    tree: Tree,
    alice: Caller,
    delta: timedelta,
) -> None:
    when = datetime.now(UTC) + delta
    response = await client.post(
        URL,
        headers=staff.headers,
        json=grant_body(alice.user, "PROJECT.ADMIN", tree.web, expiration_time=when.isoformat()),
    )
    assert response.status_code == 400
    assert list(response.json()) == ["expiration_time"]


async def test_duplicate_active_grant_is_refused(
    client: AsyncClient,
    staff: Caller,
    tree: Tree,
    alice: Caller,
) -> None:
    first = await client.post(URL, headers=staff.headers, json=grant_body(alice.user, "PROJECT.ADMIN", tree.web))
    assert first.status_code == 201
    again = await client.post(URL, headers=staff.headers, json=grant_body(alice.user, "PROJECT.ADMIN", tree.web))
    assert again.status_code == 400
    assert list(again.json()) == ["role"]
    other_role = await client.post(URL, headers=staff.headers, json=grant_body(alice.user, "PROJECT.MEMBER", tree.web))
    assert other_role.status_code == 201
    other_project = await client.post(
        URL, headers=staff.headers, json=grant_body(alice.user, "PROJECT.ADMIN", tree.data)
    )
    assert other_project.status_code == 201
    assert (await client.delete(f"{URL}{first.json()['uuid']}/", headers=staff.headers)).status_code == 204
    regrant = await client.post(URL, headers=staff.headers, json=grant_body(alice.user, "PROJECT.ADMIN", tree.web))
    assert regrant.status_code == 201, regrant.text


async def test_identical_grants_racing_each_other_leave_one_assignment(
    client: AsyncClient,
    staff: Caller,
    runtime: Runtime,
    tree: Tree,
    alice: Caller,
) -> None:
    body = grant_body(alice.user, "PROJECT.ADMIN", tree.web)
    answers = await asyncio.gather(*(client.post(URL, headers=staff.headers, json=body) for _ in range(6)))
    assert sorted(answer.status_code for answer in answers) == [201] + [400] * 5, [a.text for a in answers]
    assert all(list(answer.json()) == ["role"] for answer in answers if answer.status_code == 400)
    async with runtime.session() as session:
        active = await session.scalar(
            select(func.count())
            .select_from(RoleAssignment)
            .where(
                RoleAssignment.user_id == alice.user.id,
                RoleAssignment.role == "PROJECT.ADMIN",
                RoleAssignment.is_active.is_(True),
            )
        )
    assert active == 1


async def test_regrant_after_the_previous_assignment_expired(
    client: AsyncClient,
    staff: Caller,
    tree: Tree,
    alice: Caller,
) -> None:
    """An expired assignment grants nothing, so it must not block granting the role again."""
    soon = datetime.now(UTC) + timedelta(seconds=1)
    first = await client.post(
        URL,
        headers=staff.headers,
        json=grant_body(alice.user, "PROJECT.ADMIN", tree.web, expiration_time=soon.isoformat()),
    )
    assert first.status_code == 201
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    assert await denied(client, alice, "RESOURCE.UPDATE", tree.web_vm)
    regrant = await client.post(URL, headers=staff.headers, json=grant_body(alice.user, "PROJECT.ADMIN", tree.web))
    assert regrant.status_code == 201, regrant.text
    assert (await check(client, alice, "RESOURCE.UPDATE", tree.web_vm))["allowed"] is True


async def test_list_filters(client: AsyncClient, staff: Caller, runtime: Runtime, tree: Tree, alice: Caller) -> None:
    bob = await make_user(runtime, "bob")
    a1 = await grant(runtime, alice.user, "CUSTOMER.OWNER", tree.acme)
    a2 = await grant(runtime, alice.user, "PROJECT.MEMBER", tree.billing)
    b1 = await grant(runtime, bob, "PROJECT.MEMBER", tree.web)
    assert (await client.delete(f"{URL}{a2.uuid}/", headers=staff.headers)).status_code == 204

    everything = await client.get(URL, headers=staff.headers)
    assert everything.status_code == 200
    assert [a["uuid"] for a in everything.json()] == [str(b1.uuid), str(a2.uuid), str(a1.uuid)]  # newest first
    assert everything.headers["X-Result-Count"] == "3"

    async def uuids(**params: Any) -> list[str]:
        response = await client.get(URL, headers=staff.headers, params=params)
        assert response.status_code == 200, response.text
        assert response.headers["X-Result-Count"] == str(len(response.json()))
        return [a["uuid"] for a in response.json()]

    assert await uuids(user=str(alice.user.uuid)) == [str(a2.uuid), str(a1.uuid)]
    assert await uuids(user=str(bob.uuid)) == [str(b1.uuid)]
    assert await uuids(user=str(uuid.uuid4())) == []
    assert await uuids(role="PROJECT.MEMBER") == [str(b1.uuid), str(a2.uuid)]
    assert await uuids(role="CUSTOMER.OWNER") == [str(a1.uuid)]
    assert await uuids(is_active="true") == [str(b1.uuid), str(a1.uuid)]
    assert await uuids(is_active="false") == [str(a2.uuid)]
    assert await uuids(user=str(alice.user.uuid), role="PROJECT.MEMBER", is_active="false") == [str(a2.uuid)]
    head = await client.head(URL, headers=staff.headers, params={"user": str(alice.user.uuid)})
    assert head.status_code == 200
    assert head.headers["X-Result-Count"] == "2"
    assert head.content == b""
    paged = await client.get(URL, headers=staff.headers, params={"page_size": 2})
    assert len(paged.json()) == 2
    assert 'rel="next"' in paged.headers["Link"]


async def test_revoke(client: AsyncClient, staff: Caller, runtime: Runtime, tree: Tree, alice: Caller) -> None:
    assignment = await grant(runtime, alice.user, "CUSTOMER.OWNER", tree.acme)
    assert (await check(client, alice, "PROJECT.UPDATE", tree.web))["allowed"] is True
    response = await client.delete(f"{URL}{assignment.uuid}/", headers=staff.headers)
    assert response.status_code == 204
    assert response.content == b""
    listed = await client.get(URL, headers=staff.headers, params={"user": str(alice.user.uuid)})
    [row] = listed.json()
    assert row["uuid"] == str(assignment.uuid)
    assert row["is_active"] is False
    assert row["expiration_time"] is not None
    assert datetime.fromisoformat(row["expiration_time"]) <= datetime.now(UTC)
    assert await denied(client, alice, "PROJECT.UPDATE", tree.web)
    again = await client.delete(f"{URL}{assignment.uuid}/", headers=staff.headers)
    assert again.status_code == 204
    missing = await client.delete(f"{URL}{uuid.uuid4()}/", headers=staff.headers)
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", URL),
        ("HEAD", URL),
        ("POST", URL),
        ("DELETE", f"{URL}{uuid.UUID(int=1)}/"),
    ],
)
async def test_staff_only(client: AsyncClient, alice: Caller, method: str, path: str) -> None:
    body = (
        {
            "user": str(uuid.UUID(int=1)),
            "role": "PROJECT.ADMIN",
            "scope": {"type": "project", "uuid": str(uuid.UUID(int=2))},
        }
        if method == "POST"
        else None
    )
    forbidden = await client.request(method, path, headers=alice.headers, json=body)
    assert forbidden.status_code == 403
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 401


async def test_a_role_holder_cannot_grant_through_this_endpoint(
    client: AsyncClient,
    runtime: Runtime,
    tree: Tree,
    alice: Caller,
) -> None:
    """CUSTOMER.OWNER holds CUSTOMER.CREATE_PERMISSION, but the registry endpoint is staff-only."""
    await grant(runtime, alice.user, "CUSTOMER.OWNER", tree.acme)
    bob = await make_caller(runtime, "bob")
    response = await client.post(URL, headers=alice.headers, json=grant_body(bob.user, "PROJECT.ADMIN", tree.web))
    assert response.status_code == 403
    assert await denied(client, bob, "RESOURCE.UPDATE", tree.web_vm)


async def test_grant_and_revoke_are_audited(client: AsyncClient, staff: Caller, tree: Tree, alice: Caller) -> None:
    granted = await client.post(URL, headers=staff.headers, json=grant_body(alice.user, "PROJECT.ADMIN", tree.web))
    assert granted.status_code == 201
    assert (await client.delete(f"{URL}{granted.json()['uuid']}/", headers=staff.headers)).status_code == 204
    events = await client.get(
        "/api/events/", headers=staff.headers, params={"user": str(alice.user.uuid), "page_size": 100}
    )
    assert events.status_code == 200, events.text
    by_type = {event["event_type"]: event for event in events.json()}
    assert {"role_granted", "role_revoked"} <= set(by_type)
    for event in (by_type["role_granted"], by_type["role_revoked"]):
        assert event["user"] == str(alice.user.uuid)
        assert "alice" in event["message"]
        assert "PROJECT.ADMIN" in event["message"]
        assert event["context"]["role"] == "PROJECT.ADMIN"
