"""HTTP contract of ``/api/entities/``: staff-only registry of the entity tree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event, update

from service.authz.models import RoleAssignment
from service.entities.models import Entity
from service.runtime import Runtime
from tests.support.authz import is_denial
from tests.support.factories import auth, grant, make_entity, revoke, user_with_key
from tests.support.world import Caller

URL = "/api/entities/"


def entity_url(entity: Entity | dict[str, Any]) -> str:
    """The detail URL of an entity (a model or a response body)."""
    value = entity.uuid if isinstance(entity, Entity) else entity["uuid"]
    return f"{URL}{value}/"


async def check(client: AsyncClient, headers: dict[str, str], permission: str, entity: Entity) -> bool:
    """``allowed`` of ``POST /api/authz/check/`` for the caller of ``headers`` (False for a hidden entity's 404)."""
    response = await client.post(
        "/api/authz/check/",
        headers=headers,
        json={"permission": permission, "entity": {"type": entity.type, "uuid": str(entity.uuid)}},
    )
    if is_denial(response, entity.type, entity.uuid):
        return False
    assert response.status_code == 200, response.text
    return bool(response.json()["allowed"])


# -- access --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", URL),
        ("HEAD", URL),
        ("POST", URL),
        ("GET", f"{URL}{uuid.UUID(int=1)}/"),
        ("PATCH", f"{URL}{uuid.UUID(int=1)}/"),
        ("DELETE", f"{URL}{uuid.UUID(int=1)}/"),
    ],
)
async def test_non_staff_is_forbidden_and_anonymous_unauthorised(
    client: AsyncClient,
    member: Caller,
    method: str,
    path: str,
) -> None:
    body = {"type": "customer", "name": "ACME"} if method in {"POST", "PATCH"} else None
    forbidden = await client.request(method, path, headers=member.headers, json=body)
    assert forbidden.status_code == 403
    if method != "HEAD":
        assert forbidden.json() == {"detail": "You do not have permission to perform this action."}
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 401


async def test_non_staff_cannot_create(client: AsyncClient, member: Caller, runtime: Runtime) -> None:
    response = await client.post(URL, headers=member.headers, json={"type": "customer", "name": "ACME"})
    assert response.status_code == 403
    async with runtime.session() as session:
        assert await session.scalar(Entity.__table__.select().with_only_columns(Entity.id).limit(1)) is None


# -- create --------------------------------------------------------------------------------------------------


async def test_create_root_then_children(client: AsyncClient, staff: Caller) -> None:
    customer = await client.post(URL, headers=staff.headers, json={"type": "customer", "name": "ACME"})
    assert customer.status_code == 201, customer.text
    body = customer.json()
    assert set(body) == {"url", "uuid", "type", "name", "parent", "created"}
    assert body["type"] == "customer"
    assert body["name"] == "ACME"
    assert body["parent"] is None
    assert body["url"] == f"http://testserver.local{entity_url(body)}"
    project = await client.post(
        URL, headers=staff.headers, json={"type": "project", "name": "P", "parent": body["uuid"]}
    )
    assert project.status_code == 201, project.text
    assert project.json()["parent"] == body["uuid"]
    offering = await client.post(
        URL, headers=staff.headers, json={"type": "offering", "name": "O", "parent": body["uuid"]}
    )
    assert offering.status_code == 201, offering.text
    resource = await client.post(
        URL, headers=staff.headers, json={"type": "resource", "name": "R", "parent": project.json()["uuid"]}
    )
    assert resource.status_code == 201, resource.text
    assert resource.json()["parent"] == project.json()["uuid"]


async def test_create_keeps_supplied_uuid_and_refuses_a_duplicate(client: AsyncClient, staff: Caller) -> None:
    supplied = uuid.uuid4()
    created = await client.post(
        URL, headers=staff.headers, json={"type": "customer", "name": "A", "uuid": str(supplied)}
    )
    assert created.status_code == 201, created.text
    assert created.json()["uuid"] == str(supplied)
    assert (await client.get(f"{URL}{supplied}/", headers=staff.headers)).json()["name"] == "A"
    duplicate = await client.post(
        URL, headers=staff.headers, json={"type": "customer", "name": "B", "uuid": str(supplied)}
    )
    assert duplicate.status_code == 400
    assert list(duplicate.json()) == ["uuid"]
    assert (await client.get(f"{URL}{supplied}/", headers=staff.headers)).json()["name"] == "A"


@pytest.mark.parametrize(
    ("entity_type", "parent_type", "field"),
    [
        ("customer", "customer", "parent"),  # a root type never has a parent
        ("project", None, "parent"),  # a project needs a customer
        ("project", "project", "parent"),
        ("resource", "customer", "parent"),  # skipping a level is not allowed
        ("resource", None, "parent"),
        ("offering", "project", "parent"),
        ("offering", None, "parent"),
        ("cluster", None, "type"),  # not declared in policies/entities.csv
        ("cluster", "customer", "type"),
    ],
)
async def test_create_refuses_what_the_policy_does_not_allow(
    client: AsyncClient,
    staff: Caller,
    runtime: Runtime,
    entity_type: str,
    parent_type: str | None,
    field: str,
) -> None:
    customer = await make_entity(runtime, "customer")
    project = await make_entity(runtime, "project", parent=customer)
    parents = {None: None, "customer": customer, "project": project}
    parent = parents[parent_type]
    body: dict[str, Any] = {"type": entity_type, "name": "X"}
    if parent is not None:
        body["parent"] = str(parent.uuid)
    response = await client.post(URL, headers=staff.headers, json=body)
    assert response.status_code == 400, response.text
    assert list(response.json()) == [field]
    assert isinstance(response.json()[field], list)
    listed = await client.head(URL, headers=staff.headers)
    assert listed.headers["X-Result-Count"] == "2"


async def test_create_under_a_missing_parent(client: AsyncClient, staff: Caller) -> None:
    missing = uuid.uuid4()
    response = await client.post(
        URL, headers=staff.headers, json={"type": "project", "name": "P", "parent": str(missing)}
    )
    assert response.status_code == 400
    assert list(response.json()) == ["parent"]
    assert str(missing) in response.json()["parent"][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "no type"}, "type"),
        ({"type": "customer"}, "name"),
        ({"type": "customer", "name": ""}, "name"),
        ({"type": "customer", "name": "x" * 256}, "name"),
        ({"type": "customer", "name": "A", "parent": "not-a-uuid"}, "parent"),
        ({"type": "customer", "name": "A", "colour": "red"}, "colour"),
    ],
)
async def test_create_validates_the_body(client: AsyncClient, staff: Caller, body: dict[str, Any], field: str) -> None:
    response = await client.post(URL, headers=staff.headers, json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()


# -- list, retrieve ------------------------------------------------------------------------------------------


async def test_list_filters_by_type_and_parent(client: AsyncClient, staff: Caller, runtime: Runtime) -> None:
    acme = await make_entity(runtime, "customer", "ACME")
    initech = await make_entity(runtime, "customer", "Initech")
    p1 = await make_entity(runtime, "project", "P1", parent=acme)
    p2 = await make_entity(runtime, "project", "P2", parent=acme)
    p3 = await make_entity(runtime, "project", "P3", parent=initech)
    await make_entity(runtime, "resource", "R1", parent=p1)
    await make_entity(runtime, "offering", "O1", parent=acme)

    everything = await client.get(URL, headers=staff.headers, params={"page_size": 100})
    assert everything.status_code == 200
    assert [e["name"] for e in everything.json()] == ["ACME", "Initech", "P1", "P2", "P3", "R1", "O1"]
    projects = await client.get(URL, headers=staff.headers, params={"type": "project"})
    assert [e["name"] for e in projects.json()] == ["P1", "P2", "P3"]
    assert projects.headers["X-Result-Count"] == "3"
    under_acme = await client.get(URL, headers=staff.headers, params={"parent": str(acme.uuid)})
    assert [e["name"] for e in under_acme.json()] == ["P1", "P2", "O1"]
    acme_projects = await client.get(URL, headers=staff.headers, params={"parent": str(acme.uuid), "type": "project"})
    assert [e["uuid"] for e in acme_projects.json()] == [str(p1.uuid), str(p2.uuid)]
    under_p3 = await client.get(URL, headers=staff.headers, params={"parent": str(p3.uuid)})
    assert under_p3.json() == []
    assert under_p3.headers["X-Result-Count"] == "0"
    unknown_parent = await client.get(URL, headers=staff.headers, params={"parent": str(uuid.uuid4())})
    assert unknown_parent.status_code == 200
    assert unknown_parent.json() == []


async def test_list_reads_parents_in_one_query_not_one_per_row(
    client: AsyncClient, staff: Caller, runtime: Runtime
) -> None:
    acme = await make_entity(runtime, "customer", "ACME")
    projects = [await make_entity(runtime, "project", f"P{index}", parent=acme) for index in range(20)]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = runtime.alchemy.get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = await client.get(URL, headers=staff.headers, params={"type": "project", "page_size": 100})
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    assert [e["parent"] for e in response.json()] == [str(acme.uuid)] * len(projects)
    # the page, its count and the parents' uuids (plus the caller's token lookup, if not cached)
    assert len([s for s in statements if "FROM entity" in s]) <= 3, statements


async def test_list_paginates_with_link_and_count_headers(
    client: AsyncClient,
    staff: Caller,
    runtime: Runtime,
) -> None:
    for index in range(5):
        await make_entity(runtime, "customer", f"C{index}")
    first = await client.get(URL, headers=staff.headers, params={"page_size": 2})
    assert first.status_code == 200
    assert [e["name"] for e in first.json()] == ["C0", "C1"]
    assert first.headers["X-Result-Count"] == "5"
    links = first.headers["Link"]
    assert 'rel="first"' in links
    assert 'rel="next"' in links
    assert 'rel="last"' in links
    assert 'rel="prev"' not in links
    assert "page=2" in links.split('rel="next"')[0].rsplit("<", 1)[1]
    last = await client.get(URL, headers=staff.headers, params={"page": 3, "page_size": 2})
    assert [e["name"] for e in last.json()] == ["C4"]
    assert 'rel="prev"' in last.headers["Link"]
    assert 'rel="next"' not in last.headers["Link"]
    filtered = await client.get(URL, headers=staff.headers, params={"type": "customer", "page_size": 2})
    assert "type=customer" in filtered.headers["Link"]
    past = await client.get(URL, headers=staff.headers, params={"page": 4, "page_size": 2})
    assert past.status_code == 404


async def test_head_returns_the_count_without_a_body(
    client: AsyncClient,
    staff: Caller,
    runtime: Runtime,
) -> None:
    customer = await make_entity(runtime, "customer")
    await make_entity(runtime, "project", parent=customer)
    head = await client.head(URL, headers=staff.headers)
    assert head.status_code == 200
    assert head.headers["X-Result-Count"] == "2"
    assert "Link" in head.headers
    assert head.content == b""
    filtered = await client.head(URL, headers=staff.headers, params={"type": "project"})
    assert filtered.headers["X-Result-Count"] == "1"


async def test_retrieve(client: AsyncClient, staff: Caller, runtime: Runtime) -> None:
    customer = await make_entity(runtime, "customer", "ACME")
    project = await make_entity(runtime, "project", "P", parent=customer)
    response = await client.get(entity_url(project), headers=staff.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["uuid"] == str(project.uuid)
    assert body["type"] == "project"
    assert body["name"] == "P"
    assert body["parent"] == str(customer.uuid)
    missing = await client.get(f"{URL}{uuid.uuid4()}/", headers=staff.headers)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found."}


# -- update --------------------------------------------------------------------------------------------------


async def test_rename(client: AsyncClient, staff: Caller, runtime: Runtime) -> None:
    customer = await make_entity(runtime, "customer", "ACME")
    project = await make_entity(runtime, "project", "Old", parent=customer)
    response = await client.patch(entity_url(project), headers=staff.headers, json={"name": "New"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "New"
    assert response.json()["parent"] == str(customer.uuid)
    assert (await client.get(entity_url(project), headers=staff.headers)).json()["name"] == "New"


async def test_move_changes_inherited_decisions_at_once(
    client: AsyncClient,
    staff: Caller,
    runtime: Runtime,
) -> None:
    acme = await make_entity(runtime, "customer", "ACME")
    initech = await make_entity(runtime, "customer", "Initech")
    project = await make_entity(runtime, "project", "P", parent=acme)
    resource = await make_entity(runtime, "resource", "R", parent=project)
    alice, alice_key = await user_with_key(runtime, "alice")
    bob, bob_key = await user_with_key(runtime, "bob")
    await grant(runtime, alice, "CUSTOMER.OWNER", acme)
    await grant(runtime, bob, "CUSTOMER.OWNER", initech)
    assert await check(client, auth(alice_key), "PROJECT.UPDATE", project)
    assert await check(client, auth(alice_key), "RESOURCE.UPDATE", resource)
    assert not await check(client, auth(bob_key), "RESOURCE.UPDATE", resource)

    moved = await client.patch(entity_url(project), headers=staff.headers, json={"parent": str(initech.uuid)})
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent"] == str(initech.uuid)

    assert not await check(client, auth(alice_key), "PROJECT.UPDATE", project)
    assert not await check(client, auth(alice_key), "RESOURCE.UPDATE", resource)
    assert await check(client, auth(bob_key), "PROJECT.UPDATE", project)
    assert await check(client, auth(bob_key), "RESOURCE.UPDATE", resource)
    listed = await client.get(URL, headers=staff.headers, params={"parent": str(initech.uuid)})
    assert [e["uuid"] for e in listed.json()] == [str(project.uuid)]


@pytest.mark.parametrize(
    ("target", "new_parent"),
    [
        ("project", "resource"),  # under its own child
        ("project", "project"),  # under itself
        ("customer", "project"),  # under its own grandchild
        ("project", None),  # to the root, which its type does not allow
        ("project", "other_project"),  # a project under a project
        ("resource", "customer"),
    ],
)
async def test_move_refused(
    client: AsyncClient, staff: Caller, runtime: Runtime, target: str, new_parent: str | None
) -> None:
    customer = await make_entity(runtime, "customer")
    project = await make_entity(runtime, "project", parent=customer)
    other_project = await make_entity(runtime, "project", parent=customer)
    resource = await make_entity(runtime, "resource", parent=project)
    by_name: dict[str | None, Entity | None] = {
        "customer": customer,
        "project": project,
        "other_project": other_project,
        "resource": resource,
        None: None,
    }
    entity = by_name[target]
    assert entity is not None
    parent = by_name[new_parent]
    before = (await client.get(entity_url(entity), headers=staff.headers)).json()
    response = await client.patch(
        entity_url(entity), headers=staff.headers, json={"parent": str(parent.uuid) if parent else None}
    )
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["parent"]
    assert (await client.get(entity_url(entity), headers=staff.headers)).json()["parent"] == before["parent"]
    assert runtime.policy.ancestors(str(resource.uuid)) == [str(resource.uuid), str(project.uuid), str(customer.uuid)]


async def test_patch_unknown_entity(client: AsyncClient, staff: Caller) -> None:
    response = await client.patch(f"{URL}{uuid.uuid4()}/", headers=staff.headers, json={"name": "x"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "body", [{"type": "project"}, {"uuid": str(uuid.UUID(int=7))}, {"name": ""}, {"parent": "nope"}]
)
async def test_patch_validates_the_body(
    client: AsyncClient, staff: Caller, runtime: Runtime, body: dict[str, Any]
) -> None:
    """Type and uuid are fixed once registered; unknown or malformed fields are refused."""
    customer = await make_entity(runtime, "customer", "ACME")
    response = await client.patch(entity_url(customer), headers=staff.headers, json=body)
    assert response.status_code == 400, response.text
    assert list(response.json()) == list(body)
    after = (await client.get(entity_url(customer), headers=staff.headers)).json()
    assert (after["type"], after["uuid"], after["name"]) == ("customer", str(customer.uuid), "ACME")


async def test_list_refuses_a_malformed_parent_filter(client: AsyncClient, staff: Caller) -> None:
    response = await client.get(URL, headers=staff.headers, params={"parent": "nope"})
    assert response.status_code == 400
    assert "parent" in response.json()


# -- delete --------------------------------------------------------------------------------------------------


async def test_delete_leaf(client: AsyncClient, staff: Caller, runtime: Runtime) -> None:
    customer = await make_entity(runtime, "customer")
    project = await make_entity(runtime, "project", parent=customer)
    response = await client.delete(entity_url(project), headers=staff.headers)
    assert response.status_code == 204
    assert (await client.get(entity_url(project), headers=staff.headers)).status_code == 404
    assert runtime.policy.ancestors(str(project.uuid)) == []
    assert (await client.delete(entity_url(project), headers=staff.headers)).status_code == 404


async def test_delete_with_children_is_refused(client: AsyncClient, staff: Caller, runtime: Runtime) -> None:
    customer = await make_entity(runtime, "customer")
    project = await make_entity(runtime, "project", parent=customer)
    response = await client.delete(entity_url(customer), headers=staff.headers)
    assert response.status_code == 409
    assert "children" in response.json()["detail"]
    assert (await client.get(entity_url(customer), headers=staff.headers)).status_code == 200
    assert runtime.policy.ancestors(str(project.uuid)) == [str(project.uuid), str(customer.uuid)]
    assert (await client.delete(entity_url(project), headers=staff.headers)).status_code == 204
    assert (await client.delete(entity_url(customer), headers=staff.headers)).status_code == 204


async def test_delete_refused_while_a_role_is_held_then_allowed_after_revocation(
    client: AsyncClient,
    staff: Caller,
    runtime: Runtime,
) -> None:
    """The documented behaviour: refuse (409), never cascade; revoking the role unblocks the deletion."""
    customer = await make_entity(runtime, "customer")
    project = await make_entity(runtime, "project", parent=customer)
    alice, alice_key = await user_with_key(runtime, "alice")
    assignment = await grant(runtime, alice, "PROJECT.MANAGER", project)
    refused = await client.delete(entity_url(project), headers=staff.headers)
    assert refused.status_code == 409
    assert "revoke" in refused.json()["detail"]
    assert await check(client, auth(alice_key), "PROJECT.UPDATE", project)
    listed = await client.get("/api/role-assignments/", headers=staff.headers, params={"is_active": True})
    assert [a["uuid"] for a in listed.json()] == [str(assignment.uuid)]

    await revoke(runtime, assignment)
    deleted = await client.delete(entity_url(project), headers=staff.headers)
    assert deleted.status_code == 204
    assert (await client.get(entity_url(project), headers=staff.headers)).status_code == 404
    assert (await client.get("/api/role-assignments/", headers=staff.headers)).json() == []


async def test_an_expired_assignment_does_not_block_deletion(
    client: AsyncClient,
    staff: Caller,
    runtime: Runtime,
) -> None:
    """An expired assignment grants nothing, so it holds nothing up: it goes with the entity."""
    project = await make_entity(runtime, "project", parent=await make_entity(runtime, "customer"))
    alice, _ = await user_with_key(runtime, "alice")
    await grant(runtime, alice, "PROJECT.MANAGER", project, expiration_time=datetime.now(UTC) + timedelta(hours=1))
    async with runtime.session() as session:  # an hour later
        await session.execute(update(RoleAssignment).values(expiration_time=datetime.now(UTC) - timedelta(seconds=1)))
    deleted = await client.delete(entity_url(project), headers=staff.headers)
    assert deleted.status_code == 204, deleted.text
    assert (await client.get("/api/role-assignments/", headers=staff.headers)).json() == []
