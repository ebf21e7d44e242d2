"""A PAT never does more than its owner may do now, within its scopes and below its bindings."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from service.runtime import Runtime
from tests.support.factories import auth, grant, make_entity, user_with_key
from tests.support.pats import PATS, check, count_pats, create_pat, in_days
from tests.support.world import World

ALL_SCOPES = ["PROJECT.UPDATE", "RESOURCE.UPDATE", "CUSTOMER.UPDATE"]


async def decision(
    client: AsyncClient, token: str, permission: str, entity_type: str | None = None, entity: str | None = None
) -> tuple[bool, str]:
    """``(allowed, clause)``; ``(False, "not-found")`` for the 404 of an entity the owner holds nothing near."""
    response = await check(client, token, permission, entity_type, entity)
    if response.status_code == 404:
        assert response.json() == {"detail": f"{entity_type} with uuid {entity} does not exist."}
        return False, "not-found"
    assert response.status_code == 200, response.text
    body = response.json()
    return body["allowed"], body["clause"]


async def test_scope_not_held_is_refused_at_creation(client: AsyncClient, world: World, runtime: Runtime) -> None:
    member, key = await user_with_key(runtime, "member")
    await grant(runtime, member, "PROJECT.MEMBER", world.tree.web, actor=world.staff)
    response = await client.post(
        PATS, headers=auth(key), json={"name": "sneaky", "scopes": ["PROJECT.DELETE"], "expires_at": in_days(1)}
    )
    assert response.status_code == 400
    assert response.json() == {
        "scopes": ["You do not currently hold these permissions and cannot delegate them: ['PROJECT.DELETE']"]
    }
    _, nobody_key = await user_with_key(runtime, "nobody")
    response = await client.post(
        PATS, headers=auth(nobody_key), json={"name": "x", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(1)}
    )
    assert response.status_code == 400
    assert "scopes" in response.json()
    assert await count_pats(runtime, member) == 0


async def test_role_revoked_after_creation_denies_the_next_request(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    manager, key = await user_with_key(runtime, "manager")
    assignment = await grant(runtime, manager, "PROJECT.MANAGER", world.tree.web, actor=world.staff)
    token = (await create_pat(client, auth(key), scopes=["PROJECT.UPDATE"]))["token"]
    assert await decision(client, token, "PROJECT.UPDATE", "project", world.project) == (True, "role")
    revoked = await client.delete(f"/api/role-assignments/{assignment.uuid}/", headers=world.staff_headers)
    assert revoked.status_code == 204
    assert await decision(client, token, "PROJECT.UPDATE", "project", world.project) == (False, "not-found")
    # the token itself is still valid: it is the owner's rights that went
    assert (await client.get(PATS, headers=auth(token))).status_code == 200


@pytest.mark.parametrize(
    ("permission", "target", "allowed", "clause"),
    [
        ("PROJECT.UPDATE", "project", True, "role"),
        ("RESOURCE.UPDATE", "resource", True, "role"),
        ("PROJECT.UPDATE", "sibling", False, "token-binding"),
        ("RESOURCE.UPDATE", "sibling", False, "token-binding"),
        ("CUSTOMER.UPDATE", "customer", False, "token-binding"),
        ("PROJECT.UPDATE", "customer", False, "token-binding"),
        ("PROJECT.UPDATE", "other_customer", False, "not-found"),
        ("PROJECT.DELETE", "project", False, "token-scope"),
    ],
)
async def test_project_bound_token_acts_downward_only(
    client: AsyncClient, world: World, permission: str, target: str, allowed: bool, clause: str
) -> None:
    token = (
        await create_pat(
            client, world.owner_headers, scopes=ALL_SCOPES, allowed_scopes=[{"type": "project", "uuid": world.project}]
        )
    )["token"]
    entity_type = {"project": "project", "sibling": "project", "resource": "resource"}.get(target, "customer")
    assert await decision(client, token, permission, entity_type, getattr(world, target)) == (allowed, clause)
    # the owner's legacy key (full rights) is allowed everywhere on ACME: the binding is what narrows
    if target != "other_customer" and permission in ALL_SCOPES:
        legacy = await client.post(
            "/api/authz/check/",
            headers=world.owner_headers,
            json={"permission": permission, "entity": {"type": entity_type, "uuid": getattr(world, target)}},
        )
        assert legacy.json()["allowed"] is True


async def test_customer_bound_token_covers_projects_and_resources_not_other_customers(
    client: AsyncClient, world: World
) -> None:
    token = (
        await create_pat(
            client,
            world.owner_headers,
            scopes=ALL_SCOPES,
            allowed_scopes=[{"type": "customer", "uuid": world.customer}],
        )
    )["token"]
    assert (await decision(client, token, "CUSTOMER.UPDATE", "customer", world.customer))[0] is True
    assert (await decision(client, token, "PROJECT.UPDATE", "project", world.sibling))[0] is True
    assert (await decision(client, token, "RESOURCE.UPDATE", "resource", world.resource))[0] is True
    assert await decision(client, token, "CUSTOMER.UPDATE", "customer", world.other_customer) == (False, "not-found")


async def test_bound_token_fails_checks_without_an_entity(client: AsyncClient, world: World) -> None:
    bound = (
        await create_pat(client, world.owner_headers, allowed_scopes=[{"type": "project", "uuid": world.project}])
    )["token"]
    assert await decision(client, bound, "PROJECT.UPDATE") == (False, "token-binding")
    unbound = (await create_pat(client, world.owner_headers))["token"]
    assert await decision(client, unbound, "PROJECT.UPDATE") == (False, "no-entity")
    staff_bound = (
        await create_pat(client, world.staff_headers, allowed_scopes=[{"type": "project", "uuid": world.project}])
    )["token"]
    assert await decision(client, staff_bound, "PROJECT.UPDATE") == (False, "token-binding")
    staff_unbound = (await create_pat(client, world.staff_headers))["token"]
    assert await decision(client, staff_unbound, "PROJECT.UPDATE") == (True, "staff")


async def test_staff_token_is_limited_by_its_binding_and_scopes(client: AsyncClient, world: World) -> None:
    await create_pat(client, world.owner_headers)
    created = await create_pat(
        client,
        world.staff_headers,
        scopes=["PROJECT.UPDATE", "RESOURCE.LIST"],
        allowed_scopes=[{"type": "project", "uuid": world.project}],
    )
    token = created["token"]
    assert await decision(client, token, "PROJECT.UPDATE", "project", world.project) == (True, "staff")
    assert await decision(client, token, "RESOURCE.LIST", "resource", world.resource) == (True, "staff")
    assert await decision(client, token, "PROJECT.UPDATE", "project", world.sibling) == (False, "token-binding")
    assert await decision(client, token, "PROJECT.UPDATE", "customer", world.customer) == (False, "token-binding")
    assert await decision(client, token, "RESOURCE.TERMINATE", "resource", world.resource) == (False, "token-scope")
    assert await decision(client, token, "STAFF.ACCESS") == (False, "token-scope")
    # staff pages refuse it, and it sees only its owner's own tokens (``?user=`` is a staff filter)
    assert (await client.get("/api/entities/", headers=auth(token))).status_code == 403
    listed = await client.get(PATS, headers=auth(token), params={"user": str(world.owner.uuid)})
    assert [item["uuid"] for item in listed.json()] == [created["uuid"]]


@pytest.mark.parametrize("path", ["/api/auth-tokens/", "/api/users/", "/api/entities/", "/api/role-assignments/"])
async def test_staff_endpoints_need_staff_access_scope(client: AsyncClient, world: World, path: str) -> None:
    without = (await create_pat(client, world.staff_headers, scopes=["PROJECT.UPDATE"]))["token"]
    with_scope = (await create_pat(client, world.staff_headers, scopes=["STAFF.ACCESS"]))["token"]
    denied = await client.get(path, headers=auth(without))
    assert denied.status_code == 403, denied.text
    assert denied.json() == {"detail": "You do not have permission to perform this action."}
    assert (await client.get(path, headers=auth(with_scope))).status_code == 200
    assert (await client.get(path, headers=world.staff_headers)).status_code == 200
    assert await decision(client, with_scope, "STAFF.ACCESS") == (True, "global-permission")
    assert await decision(client, without, "STAFF.ACCESS") == (False, "token-scope")
    owner_pat = (await create_pat(client, world.owner_headers))["token"]
    assert (await client.get(path, headers=auth(owner_pat))).status_code == 403


async def test_staff_token_with_staff_access_sees_everyones_tokens(client: AsyncClient, world: World) -> None:
    mine = await create_pat(client, world.owner_headers)
    staff_pat = (await create_pat(client, world.staff_headers, scopes=["STAFF.ACCESS"]))["token"]
    listed = await client.get(PATS, headers=auth(staff_pat), params={"user": str(world.owner.uuid)})
    assert [item["uuid"] for item in listed.json()] == [mine["uuid"]]
    assert (await client.get(f"{PATS}{mine['uuid']}/", headers=auth(staff_pat))).status_code == 200
    plain = (await create_pat(client, world.staff_headers, scopes=["PROJECT.UPDATE"]))["token"]
    assert (await client.get(f"{PATS}{mine['uuid']}/", headers=auth(plain))).status_code == 404


async def test_binding_to_a_deleted_entity_shows_deleted_and_grants_nothing(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    doomed_entity = await make_entity(runtime, "project", "Doomed", parent=world.tree.acme)
    doomed = str(doomed_entity.uuid)
    manager, key = await user_with_key(runtime, "manager")
    assignment = await grant(runtime, manager, "PROJECT.MANAGER", doomed_entity, actor=world.staff)
    managers = await create_pat(client, auth(key), allowed_scopes=[{"type": "project", "uuid": doomed}])
    owners = await create_pat(
        client,
        world.owner_headers,
        allowed_scopes=[{"type": "project", "uuid": doomed}, {"type": "project", "uuid": world.project}],
    )
    assert await decision(client, managers["token"], "PROJECT.UPDATE", "project", doomed) == (True, "role")
    assert (await client.delete(f"/api/entities/{doomed}/", headers=world.staff_headers)).status_code == 409
    assert (
        await client.delete(f"/api/role-assignments/{assignment.uuid}/", headers=world.staff_headers)
    ).status_code == 204
    assert (await client.delete(f"/api/entities/{doomed}/", headers=world.staff_headers)).status_code == 204

    deleted = {"type": "project", "uuid": None, "name": "(deleted)"}
    shown = (await client.get(f"{PATS}{managers['uuid']}/", headers=auth(key))).json()
    assert shown["allowed_scopes"] == [deleted]
    listed = (await client.get(PATS, headers=world.owner_headers)).json()
    assert listed[0]["allowed_scopes"] == [
        deleted,
        {"type": "project", "uuid": world.project, "name": world.tree.web.name},
    ]
    gone = await check(client, managers["token"], "PROJECT.UPDATE", "project", doomed)
    assert gone.status_code == 404
    # the other binding still works, and the deleted one opens nothing above or beside it
    assert await decision(client, owners["token"], "PROJECT.UPDATE", "project", world.project) == (True, "role")
    assert await decision(client, owners["token"], "PROJECT.UPDATE", "project", world.sibling) == (
        False,
        "token-binding",
    )
    assert await decision(client, managers["token"], "PROJECT.UPDATE", "customer", world.customer) == (
        False,
        "not-found",  # the manager held nothing but the deleted project
    )
    rotated = await client.post(f"{PATS}{owners['uuid']}/rotate/", headers=world.owner_headers)
    assert rotated.status_code == 201
    assert rotated.json()["allowed_scopes"][0] == deleted


async def test_demoted_staff_token_loses_staff_powers_at_once(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    admin, key = await user_with_key(runtime, "admin2", staff=True)
    token = (await create_pat(client, auth(key), scopes=["STAFF.ACCESS"]))["token"]
    unbound = (await create_pat(client, auth(key), scopes=["CUSTOMER.UPDATE"]))["token"]
    assert (await client.get("/api/auth-tokens/", headers=auth(token))).status_code == 200
    assert await decision(client, unbound, "CUSTOMER.UPDATE", "customer", world.other_customer) == (True, "staff")
    demoted = await client.patch(f"/api/users/{admin.uuid}/", json={"is_staff": False}, headers=world.staff_headers)
    assert demoted.status_code == 200
    assert demoted.json()["is_staff"] is False
    assert (await client.get("/api/auth-tokens/", headers=auth(token))).status_code == 403
    assert await decision(client, token, "STAFF.ACCESS") == (False, "global-permission")
    assert await decision(client, unbound, "CUSTOMER.UPDATE", "customer", world.other_customer) == (False, "not-found")
