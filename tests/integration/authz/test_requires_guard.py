"""The ``requires(permission, entity_param)`` guard on a test-only route registered on the real app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

import httpx
import pytest
from litestar import Litestar, get
from litestar.params import Parameter

from service.authz.guards import requires
from service.runtime import Runtime
from tests.support.app import http_client, running
from tests.support.factories import grant, revoke
from tests.support.world import Caller, Tree, make_caller

DENIED = {"detail": "You do not have permission to perform this action."}

PathUUID = Annotated[UUID, Parameter(description="An entity UUID.")]


@get("/api/test-guard/{uuid:uuid}/", guards=[requires("PROJECT.UPDATE")], sync_to_thread=False)
def update_project(uuid: PathUUID) -> dict[str, str]:
    """Stands in for any handler that updates the project in its path."""
    return {"updated": str(uuid)}


@get(
    "/api/test-guard/projects/{project:uuid}/resources/",
    guards=[requires("RESOURCE.LIST", "project")],
    sync_to_thread=False,
)
def list_resources(project: PathUUID) -> dict[str, str]:
    """Stands in for a handler whose entity path parameter is not called ``uuid``."""
    return {"project": str(project)}


@get("/api/test-guard/unknown/{uuid:uuid}/", guards=[requires("PROJECT.FLY")], sync_to_thread=False)
def unknown_permission(uuid: PathUUID) -> dict[str, str]:
    """A guard naming a permission the policy does not declare."""
    return {"never": str(uuid)}


@get("/api/test-guard/misspelt/{project:uuid}/", guards=[requires("PROJECT.UPDATE", "projet")], sync_to_thread=False)
def misspelt_parameter(project: PathUUID) -> dict[str, str]:
    """A guard naming a path parameter the route does not have."""
    return {"never": str(project)}


@get("/api/test-guard/staff-area/", guards=[requires("STAFF.ACCESS", None)], sync_to_thread=False)
def staff_area() -> dict[str, str]:
    """A guard on a global permission: no entity."""
    return {"staff": "yes"}


@pytest.fixture(name="client")
async def fx_client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the test routes added, running."""
    for handler in (update_project, list_resources, unknown_permission, misspelt_parameter, staff_area):
        app.register(handler)
    async with running(app), http_client(app) as client:
        yield client


@pytest.mark.parametrize(
    ("role", "held_on", "target", "status"),
    [
        ("PROJECT.MANAGER", "web", "web", 200),  # direct holder
        ("CUSTOMER.OWNER", "acme", "web", 200),  # inherited from the customer
        ("CUSTOMER.OWNER", "initech", "web", 403),  # another customer
        ("PROJECT.MANAGER", "data", "web", 403),  # a sibling project
        ("PROJECT.MEMBER", "web", "web", 403),  # a role on the project that does not grant PROJECT.UPDATE
        ("PROJECT.ADMIN", "web", "web", 403),
        (None, None, "web", 403),  # no role at all
        ("CUSTOMER.OWNER", "acme", "web_vm", 200),  # roles pass down to every descendant, whatever its type
    ],
)
async def test_guard_decides_on_the_path_entity(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tree: Tree,
    role: str | None,
    held_on: str | None,
    target: str,
    status: int,
) -> None:
    caller = await make_caller(runtime, "alice")
    if role is not None and held_on is not None:
        await grant(runtime, caller.user, role, tree[held_on])
    response = await client.get(f"/api/test-guard/{tree[target].uuid}/", headers=caller.headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {"updated": str(tree[target].uuid)}
    else:
        assert response.json() == DENIED


async def test_revoked_role_is_refused_on_the_next_request(
    client: httpx.AsyncClient, runtime: Runtime, tree: Tree
) -> None:
    caller = await make_caller(runtime, "alice")
    assignment = await grant(runtime, caller.user, "PROJECT.MANAGER", tree.web)
    assert (await client.get(f"/api/test-guard/{tree.web.uuid}/", headers=caller.headers)).status_code == 200
    await revoke(runtime, assignment)
    response = await client.get(f"/api/test-guard/{tree.web.uuid}/", headers=caller.headers)
    assert response.status_code == 403
    assert response.json() == DENIED


async def test_named_entity_parameter(client: httpx.AsyncClient, runtime: Runtime, tree: Tree) -> None:
    member = await make_caller(runtime, "member")
    await grant(runtime, member.user, "PROJECT.MEMBER", tree.web)
    allowed = await client.get(f"/api/test-guard/projects/{tree.web.uuid}/resources/", headers=member.headers)
    assert allowed.status_code == 200
    assert allowed.json() == {"project": str(tree.web.uuid)}
    sibling = await client.get(f"/api/test-guard/projects/{tree.data.uuid}/resources/", headers=member.headers)
    assert sibling.status_code == 403


async def test_staff_unknown_entities_and_anonymous(client: httpx.AsyncClient, runtime: Runtime, tree: Tree) -> None:
    staff = await make_caller(runtime, "root", staff=True)
    assert (await client.get(f"/api/test-guard/{tree.billing.uuid}/", headers=staff.headers)).status_code == 200
    owner: Caller = await make_caller(runtime, "owner")
    await grant(runtime, owner.user, "CUSTOMER.OWNER", tree.acme)
    for caller in (staff, owner):
        unknown = await client.get(f"/api/test-guard/{uuid.uuid4()}/", headers=caller.headers)
        assert unknown.status_code == 403
        assert unknown.json() == DENIED
    anonymous = await client.get(f"/api/test-guard/{tree.web.uuid}/")
    assert anonymous.status_code == 401


async def test_unknown_permission_fails_closed_even_for_staff(
    client: httpx.AsyncClient, runtime: Runtime, tree: Tree
) -> None:
    staff = await make_caller(runtime, "root", staff=True)
    response = await client.get(f"/api/test-guard/unknown/{tree.web.uuid}/", headers=staff.headers)
    assert response.status_code == 403


async def test_a_misspelt_path_parameter_refuses_everyone_and_says_why(
    client: httpx.AsyncClient, runtime: Runtime, tree: Tree, caplog: pytest.LogCaptureFixture
) -> None:
    staff = await make_caller(runtime, "root", staff=True)
    response = await client.get(f"/api/test-guard/misspelt/{tree.web.uuid}/", headers=staff.headers)
    assert response.status_code == 403
    assert response.json() == DENIED
    assert "no such path parameter" in caplog.text
    assert "'projet'" in caplog.text


async def test_a_global_permission_needs_no_entity(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff, alice = await make_caller(runtime, "root", staff=True), await make_caller(runtime, "alice")
    assert (await client.get("/api/test-guard/staff-area/", headers=staff.headers)).json() == {"staff": "yes"}
    refused = await client.get("/api/test-guard/staff-area/", headers=alice.headers)
    assert refused.status_code == 403
    assert refused.json() == DENIED
