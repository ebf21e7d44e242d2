"""A binding to a deleted entity grants nothing, ever: not after the uuid is registered again, of any type."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from service.runtime import Runtime
from service.users.models import User
from tests.support.factories import auth, user_with_key
from tests.support.pats import PATS, check, create_pat, post_ok
from tests.support.world import World


async def grant_over_http(
    client: AsyncClient, world: World, user: User, role: str, entity_type: str, entity: str
) -> dict[str, Any]:
    """Grant ``role`` on the entity ``entity`` (a uuid) through the API, as staff; returns the assignment."""
    body = {"user": str(user.uuid), "role": role, "scope": {"type": entity_type, "uuid": entity}}
    return await post_ok(client, "/api/role-assignments/", world.staff_headers, body)


async def _reuse(client: AsyncClient, world: World, runtime: Runtime, new_type: str, parent: str | None) -> None:
    """Bind a PAT to a project, delete it, register ``new_type`` under its uuid, give the owner a role there."""
    user, key = await user_with_key(runtime, "victim")
    project = (
        await post_ok(
            client, "/api/entities/", world.staff_headers, {"type": "project", "name": "X", "parent": world.customer}
        )
    )["uuid"]
    assignment = (await grant_over_http(client, world, user, "PROJECT.MANAGER", "project", project))["uuid"]
    token = (
        await create_pat(
            client, auth(key), scopes=["PROJECT.UPDATE"], allowed_scopes=[{"type": "project", "uuid": project}]
        )
    )["token"]
    allowed = await check(client, token, "PROJECT.UPDATE", "project", project)
    assert allowed.json()["allowed"] is True
    revoked = await client.delete(f"/api/role-assignments/{assignment}/", headers=world.staff_headers)
    assert revoked.status_code == 204
    assert (await client.delete(f"/api/entities/{project}/", headers=world.staff_headers)).status_code == 204
    body = {"type": new_type, "name": "reborn", "uuid": project, "parent": parent}
    await post_ok(client, "/api/entities/", world.staff_headers, body)
    role = {"customer": "CUSTOMER.OWNER", "project": "PROJECT.MANAGER"}[new_type]
    await grant_over_http(client, world, user, role, new_type, project)

    # the user holds the role again (a password or legacy key may act) ...
    legacy = await client.post(
        "/api/authz/check/",
        headers=auth(key),
        json={"permission": "PROJECT.UPDATE", "entity": {"type": new_type, "uuid": project}},
    )
    assert legacy.json()["allowed"] is True
    # ... but the token's binding died with the entity it named
    denied = await check(client, token, "PROJECT.UPDATE", new_type, project)
    assert denied.json()["allowed"] is False
    assert denied.json()["clause"] == "token-binding"
    listing = (await client.get(PATS, headers=auth(key))).json()
    assert [b["name"] for t in listing for b in t["allowed_scopes"]] == ["(deleted)"]


@pytest.mark.parametrize("new_type", ["customer", "project"])
async def test_a_deleted_binding_never_comes_back(
    client: AsyncClient, world: World, runtime: Runtime, new_type: str
) -> None:
    await _reuse(client, world, runtime, new_type, None if new_type == "customer" else world.customer)
