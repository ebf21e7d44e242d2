"""Every bad creation input gets a 400 naming the field at fault, creates nothing, and is never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from httpx import AsyncClient
from litestar import Litestar

from service.runtime import Runtime
from tests.support.app import SHARED_LOOP
from tests.support.factories import auth, grant, user_with_key
from tests.support.pats import PATS, check, count_pats, create_pat, in_days
from tests.support.world import World

Body = Callable[[World], dict[str, Any]]
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000001"
TYPES = "['customer', 'offering', 'project', 'resource']"


def body(**overrides: Any) -> Body:
    """A valid creation body with ``overrides``; ``{customer}``-style placeholders name World entities."""

    def build(world: World) -> dict[str, Any]:
        payload = {"name": "ci", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(30), **overrides}
        return _fill(payload, world)

    return build


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return getattr(world, value[1:-1])
    if isinstance(value, list):
        return [_fill(item, world) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, world) for key, item in value.items()}
    return value


def binding(entity_type: str, entity: str) -> dict[str, str]:
    return {"type": entity_type, "uuid": entity}


# (id, body, field, exact messages or None when only the field is pinned (msgspec's wording))
OWNER_CASES: list[tuple[str, Body, str, Any]] = [
    ("name-blank", body(name=""), "name", ["This field may not be blank."]),
    ("name-whitespace", body(name="   "), "name", ["This field may not be blank."]),
    ("name-tab", body(name=" \t "), "name", ["Control characters are not allowed."]),
    ("name-151-chars", body(name="n" * 151), "name", None),
    ("name-nul", body(name="a\x00b"), "name", ["Control characters are not allowed."]),
    ("name-missing", lambda w: {"scopes": ["PROJECT.UPDATE"], "expires_at": in_days(1)}, "name", None),
    ("name-not-a-string", body(name=7), "name", None),
    ("scopes-empty", body(scopes=[]), "scopes", ["At least one scope is required."]),
    ("scopes-unknown", body(scopes=["NOPE"]), "scopes", ["Invalid scope(s): ['NOPE']"]),
    (
        "scopes-unknown-among-known",
        body(scopes=["PROJECT.UPDATE", "NOPE", "ALSO.NOPE"]),
        "scopes",
        ["Invalid scope(s): ['NOPE', 'ALSO.NOPE']"],
    ),
    ("scopes-not-a-list", body(scopes="PROJECT.UPDATE"), "scopes", None),
    (
        "scopes-staff-access",
        body(scopes=["STAFF.ACCESS"]),
        "scopes",
        ["Only staff users can request the STAFF.ACCESS scope."],
    ),
    (
        "scopes-support-access",
        body(scopes=["SUPPORT.ACCESS"]),
        "scopes",
        ["Only staff or support users can request the SUPPORT.ACCESS scope."],
    ),
    (
        "scopes-never-delegable",
        body(scopes=["SERVICE_ACCOUNT.MANAGE"]),
        "scopes",
        ["These permissions can never be delegated to a token: ['SERVICE_ACCOUNT.MANAGE']"],
    ),
    ("expires-past", body(expires_at=in_days(-1)), "expires_at", ["Expiration must be in the future."]),
    ("expires-now-ish", body(expires_at=in_days(-1 / 86400)), "expires_at", ["Expiration must be in the future."]),
    ("expires-366-days", body(expires_at=in_days(366)), "expires_at", ["Expiration cannot exceed 365 days from now."]),
    ("expires-not-a-date", body(expires_at="next tuesday"), "expires_at", None),
    ("expires-missing", lambda w: {"name": "x", "scopes": ["PROJECT.UPDATE"]}, "expires_at", None),
    (
        "binding-unknown-type",
        body(allowed_scopes=[binding("project", "{project}"), binding("galaxy", "{project}")]),
        "allowed_scopes",
        [{}, {"type": [f"Unknown scope type 'galaxy'. Expected one of: {TYPES}."]}],
    ),
    (
        "binding-unknown-uuid",
        body(allowed_scopes=[binding("project", UNKNOWN_UUID)]),
        "allowed_scopes",
        [f"project with uuid {UNKNOWN_UUID} does not exist."],
    ),
    ("binding-wrong-type-for-uuid", body(allowed_scopes=[binding("customer", "{project}")]), "allowed_scopes", None),
    ("binding-bad-uuid", body(allowed_scopes=[binding("project", "not-a-uuid")]), "allowed_scopes", None),
    (
        "binding-unknown-field",
        body(allowed_scopes=[{"type": "project", "uuid": "{project}", "x": 1}]),
        "allowed_scopes",
        None,
    ),
    (
        "binding-where-nothing-held",
        body(allowed_scopes=[binding("customer", "{other_customer}")]),
        "allowed_scopes",
        None,
    ),
    (
        "binding-type-not-bindable",
        body(scopes=["CUSTOMER.UPDATE"], allowed_scopes=[binding("project", "{project}")]),
        "allowed_scopes",
        ["None of the requested scopes may be bound to a project."],
    ),
    (
        "networks-garbage",
        body(allowed_networks=["10.0.0.0/8", "bogus"]),
        "allowed_networks",
        ["bogus is not a valid IP address or CIDR network."],
    ),
    (
        "networks-host-bits",
        body(allowed_networks=["203.0.113.5/24"]),
        "allowed_networks",
        ["203.0.113.5/24 has host bits set; use 203.0.113.0/24 instead."],
    ),
    (
        "networks-v6-host-bits",
        body(allowed_networks=["2001:db8::1/64"]),
        "allowed_networks",
        ["2001:db8::1/64 has host bits set; use 2001:db8::/64 instead."],
    ),
    (
        "networks-all-v4",
        body(allowed_networks=["0.0.0.0/0"]),
        "allowed_networks",
        ["0.0.0.0/0 allows every address; leave the list empty instead."],
    ),
    (
        "networks-all-v6",
        body(allowed_networks=["::/0"]),
        "allowed_networks",
        ["::/0 allows every address; leave the list empty instead."],
    ),
    (
        "networks-empty-entry",
        body(allowed_networks=[" "]),
        "allowed_networks",
        ["Network ACL entries must be non-empty strings."],
    ),
    (
        "networks-33",
        body(allowed_networks=[f"10.0.{n}.0/24" for n in range(33)]),
        "allowed_networks",
        ["A token can have at most 32 network ACL entries."],
    ),
    ("networks-not-strings", body(allowed_networks=[10]), "allowed_networks", None),
    ("unknown-body-field", body(user="someone-else"), "user", None),
]


@SHARED_LOOP
@pytest.mark.parametrize(("case", "make_body", "field", "messages"), OWNER_CASES, ids=[c[0] for c in OWNER_CASES])
async def test_bad_input_is_refused_and_creates_nothing(
    module_client: AsyncClient,
    module_world: World,
    module_app: Litestar,
    case: str,
    make_body: Body,
    field: str,
    messages: Any,
) -> None:
    runtime, world = module_app.state.runtime, module_world
    before = await count_pats(runtime, world.owner)
    response = await module_client.post(PATS, json=make_body(world), headers=world.owner_headers)
    assert response.status_code == 400, (case, response.status_code, response.text)
    errors = response.json()
    assert any(key == field or key.startswith((f"{field}[", f"{field}.")) for key in errors), (case, errors)
    if messages is not None:
        assert errors == {field: messages}
    assert await count_pats(runtime, world.owner) == before


async def test_binding_where_the_user_holds_no_requested_permission(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    response = await client.post(
        PATS,
        headers=world.owner_headers,
        json=body(allowed_scopes=[binding("customer", "{other_customer}"), binding("project", "{project}")])(world),
    )
    assert response.status_code == 400
    # another customer's tree, where the owner holds nothing: answered as for an entity that does not exist
    assert response.json() == {"allowed_scopes": [f"customer with uuid {world.other_customer} does not exist."]}
    assert await count_pats(runtime, world.owner) == 0


async def test_binding_with_an_existing_uuid_of_another_type(client: AsyncClient, world: World) -> None:
    response = await client.post(
        PATS, headers=world.owner_headers, json=body(allowed_scopes=[binding("customer", "{project}")])(world)
    )
    assert response.status_code == 400
    assert response.json() == {"allowed_scopes": [f"customer with uuid {world.project} does not exist."]}


async def test_field_errors_are_collected_together(client: AsyncClient, world: World, runtime: Runtime) -> None:
    response = await client.post(
        PATS,
        headers=world.owner_headers,
        json={"name": " ", "scopes": [], "expires_at": in_days(-2), "allowed_networks": ["0.0.0.0/0"]},
    )
    assert response.status_code == 400
    assert response.json() == {
        "name": ["This field may not be blank."],
        "scopes": ["At least one scope is required."],
        "expires_at": ["Expiration must be in the future."],
        "allowed_networks": ["0.0.0.0/0 allows every address; leave the list empty instead."],
    }
    assert await count_pats(runtime, world.owner) == 0


@SHARED_LOOP
@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"name": "x"', b"null"])
async def test_malformed_json_is_a_400(
    module_client: AsyncClient, module_world: World, module_app: Litestar, raw: bytes
) -> None:
    headers = {**module_world.owner_headers, "Content-Type": "application/json"}
    response = await module_client.post(PATS, content=raw, headers=headers)
    assert response.status_code == 400, response.text
    assert await count_pats(module_app.state.runtime, module_world.owner) == 0


async def test_staff_bindings_cannot_combine_with_staff_access(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    response = await client.post(
        PATS,
        headers=world.staff_headers,
        json=body(scopes=["STAFF.ACCESS", "PROJECT.UPDATE"], allowed_scopes=[binding("project", "{project}")])(world),
    )
    assert response.status_code == 400
    assert response.json() == {
        "allowed_scopes": [
            "Entity bindings cannot be combined with STAFF.ACCESS or SUPPORT.ACCESS — those scopes are global."
        ]
    }
    assert await count_pats(runtime, world.staff) == 0


async def test_scope_the_user_does_not_hold_is_refused(client: AsyncClient, world: World, runtime: Runtime) -> None:
    manager, key = await user_with_key(runtime, "manager")
    await grant(runtime, manager, "PROJECT.MANAGER", world.tree.web, actor=world.staff)
    response = await client.post(
        PATS, headers=auth(key), json=body(scopes=["PROJECT.UPDATE", "CUSTOMER.UPDATE"])(world)
    )
    assert response.status_code == 400
    assert response.json() == {
        "scopes": ["You do not currently hold these permissions and cannot delegate them: ['CUSTOMER.UPDATE']"]
    }
    sibling = await client.post(
        PATS, headers=auth(key), json=body(allowed_scopes=[binding("project", "{sibling}")])(world)
    )
    assert sibling.status_code == 400
    assert sibling.json() == {"allowed_scopes": [f"project with uuid {world.sibling} does not exist."]}
    customer = await client.post(  # above the project: the manager may learn it exists, and holds nothing there
        PATS, headers=auth(key), json=body(allowed_scopes=[binding("customer", "{customer}")])(world)
    )
    assert customer.json() == {
        "allowed_scopes": [f"You do not hold any of the requested permissions on customer {world.customer}."]
    }
    assert await count_pats(runtime, manager) == 0


async def test_the_21st_active_token_is_refused(client: AsyncClient, world: World, runtime: Runtime) -> None:
    tokens = [await create_pat(client, world.owner_headers, name=f"t{n}") for n in range(20)]
    response = await client.post(PATS, headers=world.owner_headers, json=body()(world))
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Maximum number of active tokens (20) reached."]}
    assert await count_pats(runtime, world.owner) == 20
    # revoked tokens do not count
    assert (await client.delete(f"{PATS}{tokens[0]['uuid']}/", headers=world.owner_headers)).status_code == 204
    assert (await client.post(PATS, headers=world.owner_headers, json=body()(world))).status_code == 201
    assert await count_pats(runtime, world.owner, active_only=True) == 20


async def test_user_without_the_flag_cannot_create_nor_use(client: AsyncClient, world: World, runtime: Runtime) -> None:
    created = await create_pat(client, world.owner_headers)
    user_path = f"/api/users/{world.owner.uuid}/"
    off = await client.patch(user_path, json={"can_use_personal_access_tokens": False}, headers=world.staff_headers)
    assert off.status_code == 200
    assert off.json()["can_use_personal_access_tokens"] is False
    refused = await client.post(PATS, headers=world.owner_headers, json=body()(world))
    assert refused.status_code == 400
    assert refused.json() == {"non_field_errors": ["You are not allowed to create personal access tokens."]}
    assert await count_pats(runtime, world.owner) == 1
    denied = await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)
    assert denied.status_code == 401
    assert denied.json() == {"detail": "Invalid token."}
    listed = (await client.get(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).json()
    assert listed["is_active"] is True  # clearing the flag does not revoke
    on = await client.patch(user_path, json={"can_use_personal_access_tokens": True}, headers=world.staff_headers)
    assert on.status_code == 200
    allowed = await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)
    assert allowed.status_code == 200
    assert allowed.json()["allowed"] is True


async def test_staff_without_the_flag_cannot_create_either(client: AsyncClient, world: World, runtime: Runtime) -> None:
    staff, key = await user_with_key(runtime, "flagless", staff=True, can_use_personal_access_tokens=False)
    response = await client.post(PATS, headers=auth(key), json=body()(world))
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["You are not allowed to create personal access tokens."]}
    assert await count_pats(runtime, staff) == 0


@pytest.mark.parametrize("name", ["n" * 150, "{pat_name} {0} %s", "ünïcødé ✓", "  padded  "])
async def test_awkward_valid_names(client: AsyncClient, world: World, runtime: Runtime, name: str) -> None:
    created = await create_pat(client, world.owner_headers, name=name)
    assert created["name"] == name.strip()
    rotated = await client.post(f"{PATS}{created['uuid']}/rotate/", headers=world.owner_headers)
    assert rotated.status_code == 201
    assert rotated.json()["name"] == name.strip()
    assert (await client.delete(f"{PATS}{rotated.json()['uuid']}/", headers=world.owner_headers)).status_code == 204
