"""available_scopes and available_binding_targets, checked against the policy files read independently."""

from __future__ import annotations

from pathlib import Path

import pytest
from httpx import AsyncClient

from service.runtime import Runtime
from tests.support.factories import auth, grant, parse_links, user_with_key
from tests.support.pats import PATS, create_pat
from tests.support.world import World

POLICIES = Path(__file__).resolve().parents[3] / "policies"
SCOPES = f"{PATS}available_scopes/"
TARGETS = f"{PATS}available_binding_targets/"


def rows(file: str, kind: str) -> list[list[str]]:
    """The ``kind`` lines of a policy file, fields split as Casbin does."""
    lines = (POLICIES / file).read_text().splitlines()
    return [[f.strip() for f in line.split(",")][1:] for line in lines if line.split(",", 1)[0].strip() == kind]


def declared() -> tuple[dict[str, tuple[str, str]], dict[str, list[str]], dict[str, list[str]]]:
    """(permission -> (delegation, description) in order, permission -> bind types, role -> permissions)."""
    permissions = {
        name: (delegation, description) for name, _scope, delegation, description in rows("permissions.csv", "p3")
    }
    binds: dict[str, list[str]] = {}
    for name, entity_type in rows("permissions.csv", "p4"):
        binds.setdefault(name, []).append(entity_type)
    roles: dict[str, list[str]] = {}
    for role, permission in rows("roles.csv", "g"):
        roles.setdefault(role, []).append(permission)
    return permissions, binds, roles


async def all_pages(client: AsyncClient, path: str, headers: dict[str, str]) -> list[dict[str, str]]:
    return (await client.get(path, headers=headers, params={"page_size": 100})).json()


async def test_owner_scopes_are_the_roles_delegable_permissions_in_declaration_order(
    client: AsyncClient, world: World
) -> None:
    permissions, _, roles = declared()
    owner_grants = set(roles["CUSTOMER.OWNER"])
    expected = [
        {"permission": name, "description": description}
        for name, (delegation, description) in permissions.items()
        if name in owner_grants and delegation == "token"
    ]
    got = await all_pages(client, SCOPES, world.owner_headers)
    assert got == expected
    assert got[0] == {
        "permission": "CUSTOMER.UPDATE",
        "description": "Change the name and billing details of an organisation",
    }
    names = {item["permission"] for item in got}
    assert "SERVICE_ACCOUNT.MANAGE" not in names
    assert "STAFF.ACCESS" not in names
    assert all(item["description"] for item in got)
    assert all(item["description"] != item["permission"] for item in got)


async def test_staff_scopes_are_every_delegable_permission(client: AsyncClient, world: World) -> None:
    permissions, _, _ = declared()
    expected = [
        {"permission": name, "description": description}
        for name, (delegation, description) in permissions.items()
        if delegation != "never"
    ]
    got = await all_pages(client, SCOPES, world.staff_headers)
    assert got == expected
    assert {"STAFF.ACCESS", "SUPPORT.ACCESS"} <= {item["permission"] for item in got}
    assert "SERVICE_ACCOUNT.MANAGE" not in {item["permission"] for item in got}


async def test_user_without_roles_gets_nothing(client: AsyncClient, world: World, runtime: Runtime) -> None:
    _, key = await user_with_key(runtime, "nobody")
    for path in (SCOPES, TARGETS):
        response = await client.get(path, headers=auth(key))
        assert response.status_code == 200
        assert response.json() == []
        assert response.headers["x-result-count"] == "0"
        assert (await client.head(path, headers=auth(key))).headers["x-result-count"] == "0"


async def test_scopes_follow_live_roles(client: AsyncClient, world: World, runtime: Runtime) -> None:
    _, _, roles = declared()
    member, key = await user_with_key(runtime, "member")
    assignment = await grant(runtime, member, "PROJECT.MEMBER", world.tree.web, actor=world.staff)
    got = [item["permission"] for item in await all_pages(client, SCOPES, auth(key))]
    assert got
    assert set(got) <= set(roles["PROJECT.MEMBER"])
    assert (
        await client.delete(f"/api/role-assignments/{assignment.uuid}/", headers=world.staff_headers)
    ).status_code == 204
    assert await all_pages(client, SCOPES, auth(key)) == []


async def test_owner_binding_targets_are_the_customer_where_the_role_is_held(client: AsyncClient, world: World) -> None:
    permissions, binds, roles = declared()
    expected = [
        {"permission": name, "types": ["customer"]}
        for name in sorted(roles["CUSTOMER.OWNER"])
        if permissions[name][0] == "token" and "customer" in binds.get(name, [])
    ]
    assert await all_pages(client, TARGETS, world.owner_headers) == expected
    assert {"permission": "PROJECT.UPDATE", "types": ["customer"]} in expected  # not project: held on the customer


async def test_project_manager_binding_targets_are_the_project(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    permissions, binds, roles = declared()
    manager, key = await user_with_key(runtime, "manager")
    await grant(runtime, manager, "PROJECT.MANAGER", world.tree.web, actor=world.staff)
    expected = [
        {"permission": name, "types": ["project"]}
        for name in sorted(roles["PROJECT.MANAGER"])
        if permissions[name][0] == "token" and "project" in binds.get(name, [])
    ]
    assert expected
    assert await all_pages(client, TARGETS, auth(key)) == expected
    await grant(runtime, manager, "CUSTOMER.OWNER", world.tree.initech, actor=world.staff)
    both = {item["permission"]: item["types"] for item in await all_pages(client, TARGETS, auth(key))}
    assert both["PROJECT.UPDATE"] == ["customer", "project"]
    assert both["CUSTOMER.UPDATE"] == ["customer"]


async def test_staff_binding_targets_are_every_bindable_type(client: AsyncClient, world: World) -> None:
    permissions, binds, _ = declared()
    expected = [
        {"permission": name, "types": sorted(binds[name])} for name in sorted(binds) if permissions[name][0] != "never"
    ]
    got = await all_pages(client, TARGETS, world.staff_headers)
    assert got == expected
    assert not {"STAFF.ACCESS", "SUPPORT.ACCESS", "SERVICE_ACCOUNT.MANAGE"} & {item["permission"] for item in got}


@pytest.mark.parametrize("path", [SCOPES, TARGETS])
async def test_pagination_headers(client: AsyncClient, world: World, path: str) -> None:
    everything = await all_pages(client, path, world.owner_headers)
    total = len(everything)
    assert total > 10
    first = await client.get(path, headers=world.owner_headers)
    assert first.json() == everything[:10]
    assert first.headers["x-result-count"] == str(total)
    links = parse_links(first.headers["link"])
    assert set(links) == {"first", "next", "last"}
    second = await client.get(links["next"], headers=world.owner_headers)
    assert second.status_code == 200
    assert second.json() == everything[10:20]
    expected_rels = {"first", "prev", "next", "last"} if total > 20 else {"first", "prev", "last"}
    assert set(parse_links(second.headers["link"])) == expected_rels
    last = await client.get(links["last"], headers=world.owner_headers)
    assert last.json() == everything[(total - 1) // 10 * 10 :]
    head = await client.head(path, headers=world.owner_headers)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["x-result-count"] == str(total)
    beyond = await client.get(path, headers=world.owner_headers, params={"page": 99})
    assert beyond.status_code == 404


async def test_a_pat_may_ask_what_its_owner_can_delegate(client: AsyncClient, world: World) -> None:
    token = (await create_pat(client, world.owner_headers))["token"]
    as_pat = await all_pages(client, SCOPES, auth(token))
    assert as_pat == await all_pages(client, SCOPES, world.owner_headers)
