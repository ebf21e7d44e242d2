"""``POST /api/authz/check/`` through HTTP with legacy tokens: request-time inheritance and explained decisions.

The tree and who holds what (see :class:`~tests.support.world.Tree`)::

    acme (customer)       owner: CUSTOMER.OWNER      support: CUSTOMER.SUPPORT
    ├─ web (project)      pm: PROJECT.MANAGER        member: PROJECT.MEMBER
    │  └─ web_vm (resource)
    ├─ data (project)
    │  └─ data_vm (resource)
    └─ shop (offering)    om: OFFERING.MANAGER
    initech (customer)
    └─ billing (project)
       └─ billing_db (resource)
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import update

from service.authz.models import RoleAssignment
from service.authz.sync import FactSync
from service.runtime import Runtime
from tests.support.app import SHARED_LOOP
from tests.support.authz import check, denied
from tests.support.factories import grant, revoke
from tests.support.world import Caller, Tree, build_tree, make_caller

ROLES_CSV = Path(__file__).resolve().parents[3] / "policies" / "roles.csv"
HOLDINGS = {  # caller -> (role, entity it is held on)
    "owner": ("CUSTOMER.OWNER", "acme"),
    "support": ("CUSTOMER.SUPPORT", "acme"),
    "pm": ("PROJECT.MANAGER", "web"),
    "member": ("PROJECT.MEMBER", "web"),
    "om": ("OFFERING.MANAGER", "shop"),
}


def rule_line(role: str, permission: str) -> str:
    """``roles.csv:N`` of the ``g, role, permission`` line, read from the shipped policy file itself."""
    for number, line in enumerate(ROLES_CSV.read_text().splitlines(), start=1):
        if [part.strip() for part in line.split(",")] == ["g", role, permission]:
            return f"roles.csv:{number}"
    raise AssertionError(f"no rule g, {role}, {permission} in {ROLES_CSV}")


@dataclass
class Population:
    """The callers of the table and the assignments they hold."""

    callers: dict[str, Caller]
    assignments: dict[str, RoleAssignment]


async def populate(runtime: Runtime, tree: Tree) -> Population:
    """A caller per :data:`HOLDINGS` entry, plus ``nobody`` (no roles) and ``staff``."""
    callers = {name: await make_caller(runtime, name) for name in [*HOLDINGS, "nobody"]}
    callers["staff"] = await make_caller(runtime, "staff", staff=True)
    assignments = {
        name: await grant(runtime, callers[name].user, role, tree[target]) for name, (role, target) in HOLDINGS.items()
    }
    return Population(callers, assignments)


@pytest.fixture(name="people")
async def fx_people(runtime: Runtime, tree: Tree) -> Population:
    """The population of :func:`populate` for a test that changes it."""
    return await populate(runtime, tree)


@dataclass
class ReadOnly:
    """The module's shared app with the tree and the population, for the checks that change nothing."""

    client: AsyncClient
    runtime: Runtime
    tree: Tree
    people: Population


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="read_only")
async def fx_read_only(module_app: Litestar, module_client: AsyncClient) -> ReadOnly:
    runtime: Runtime = module_app.state.runtime
    tree = await build_tree(runtime)
    return ReadOnly(module_client, runtime, tree, await populate(runtime, tree))


async def post_check(client: AsyncClient, caller: Caller, body: dict[str, Any]) -> Any:
    """The raw response of ``POST /api/authz/check/``."""
    return await client.post("/api/authz/check/", headers=caller.headers, json=body)


DECISIONS = [
    # direct grant: the role is held on the entity itself
    ("owner", "CUSTOMER.UPDATE", "acme", True),
    ("pm", "PROJECT.UPDATE", "web", True),
    ("member", "RESOURCE.LIST", "web", True),
    ("om", "OFFERING.UPDATE", "shop", True),
    ("support", "PROJECT.LIST", "acme", True),
    # inherited customer -> project -> resource (depth 2 and 3)
    ("owner", "PROJECT.UPDATE", "web", True),
    ("owner", "PROJECT.DELETE", "data", True),
    ("owner", "RESOURCE.TERMINATE", "web_vm", True),
    ("owner", "RESOURCE.SET_PLAN", "data_vm", True),
    ("owner", "OFFERING.PAUSE", "shop", True),
    ("support", "RESOURCE.LIST", "data_vm", True),
    ("pm", "RESOURCE.SET_LIMITS", "web_vm", True),
    ("member", "RESOURCE.LIST", "web_vm", True),
    # a legacy token acts with the user's full rights, non-delegable permissions included
    ("owner", "SERVICE_ACCOUNT.MANAGE", "web", True),
    # no upward inheritance
    ("pm", "RESOURCE.LIST", "acme", False),
    ("pm", "PROJECT.UPDATE", "acme", False),
    ("member", "RESOURCE.LIST", "acme", False),
    ("om", "ORDER.LIST", "acme", False),
    # the role held does not grant the permission
    ("member", "RESOURCE.UPDATE", "web_vm", False),
    ("support", "PROJECT.UPDATE", "web", False),
    ("pm", "PROJECT.DELETE", "web", False),
    ("om", "OFFERING.ARCHIVE", "shop", False),
    # staff hold every permission everywhere
    ("staff", "CUSTOMER.UPDATE", "initech", True),
    ("staff", "RESOURCE.TERMINATE", "billing_db", True),
    ("staff", "SERVICE_ACCOUNT.MANAGE", "web", True),
    ("staff", "OFFERING.DELETE", "acme", True),
]


HIDDEN = [  # the caller holds nothing on, above or below the target: 404, exactly as for an unknown entity
    # sibling isolation
    ("pm", "PROJECT.UPDATE", "data"),
    ("pm", "RESOURCE.UPDATE", "data_vm"),
    ("member", "RESOURCE.LIST", "data_vm"),
    ("om", "RESOURCE.LIST", "web_vm"),
    # another customer's tree
    ("owner", "CUSTOMER.UPDATE", "initech"),
    ("owner", "PROJECT.UPDATE", "billing"),
    ("owner", "RESOURCE.LIST", "billing_db"),
    # no role at all
    ("nobody", "RESOURCE.LIST", "web_vm"),
    ("nobody", "CUSTOMER.UPDATE", "acme"),
]


@SHARED_LOOP
@pytest.mark.parametrize(("who", "permission", "target"), HIDDEN, ids=["-".join(row) for row in HIDDEN])
async def test_entities_held_nothing_near_are_not_found(
    read_only: ReadOnly, who: str, permission: str, target: str
) -> None:
    client, tree, people = read_only.client, read_only.tree, read_only.people
    entity = tree[target]
    unknown = uuid.uuid4()
    responses = [
        await post_check(
            client, people.callers[who], {"permission": permission, "entity": {"type": entity.type, "uuid": str(ref)}}
        )
        for ref in (entity.uuid, unknown)
    ]
    assert [r.status_code for r in responses] == [404, 404]
    assert responses[0].json()["detail"].replace(str(entity.uuid), str(unknown)) == responses[1].json()["detail"]
    staff = await check(client, people.callers["staff"], permission, entity)
    assert staff["allowed"] is True


@SHARED_LOOP
@pytest.mark.parametrize(
    ("who", "permission", "target", "allowed"),
    DECISIONS,
    ids=[f"{w}-{p}-{t}-{'allow' if a else 'deny'}" for w, p, t, a in DECISIONS],
)
async def test_decision_table(read_only: ReadOnly, who: str, permission: str, target: str, allowed: bool) -> None:
    client, tree, people = read_only.client, read_only.tree, read_only.people
    body = await check(client, people.callers[who], permission, tree[target])
    assert set(body) == {"allowed", "reason", "clause"}
    assert body["allowed"] is allowed
    reason = str(body["reason"])
    if who == "staff":
        assert body["clause"] == "staff"
        assert permission in reason
    elif allowed:
        role, held_on = HOLDINGS[who]
        assert body["clause"] == "role"
        assert role in reason
        assert str(people.assignments[who].uuid) in reason
        assert str(tree[held_on].uuid) in reason
        assert rule_line(role, permission) in reason
    else:
        assert body["clause"] == "role"
        assert reason


async def test_explanation_names_a_granting_assignment_and_its_rule(
    client: AsyncClient,
    runtime: Runtime,
    tree: Tree,
    people: Population,
) -> None:
    """pm also gets CUSTOMER.OWNER on acme: on web both assignments grant PROJECT.UPDATE and the nearer one is named,
    on data only the owner's grants it."""
    pm = people.callers["pm"]
    on_customer = await grant(runtime, pm.user, "CUSTOMER.OWNER", tree.acme)
    on_web = str((await check(client, pm, "PROJECT.UPDATE", tree.web))["reason"])
    candidates = {
        str(people.assignments["pm"].uuid): rule_line("PROJECT.MANAGER", "PROJECT.UPDATE"),
        str(on_customer.uuid): rule_line("CUSTOMER.OWNER", "PROJECT.UPDATE"),
    }
    named = [assignment for assignment in candidates if assignment in on_web]
    assert named == [str(people.assignments["pm"].uuid)], on_web  # the nearest of the two: held on web itself
    assert candidates[named[0]] in on_web
    on_data = await check(client, pm, "PROJECT.UPDATE", tree.data)
    assert on_data["allowed"] is True
    assert str(on_customer.uuid) in str(on_data["reason"])
    assert rule_line("CUSTOMER.OWNER", "PROJECT.UPDATE") in str(on_data["reason"])


@SHARED_LOOP
async def test_global_permissions_and_checks_without_an_entity(read_only: ReadOnly) -> None:
    client, people = read_only.client, read_only.people
    staff, owner = people.callers["staff"], people.callers["owner"]
    for caller, allowed in [(staff, True), (owner, False)]:
        response = await post_check(client, caller, {"permission": "STAFF.ACCESS"})
        assert response.status_code == 200
        assert response.json()["allowed"] is allowed
        assert response.json()["clause"] == "global-permission"
    no_entity = await post_check(client, owner, {"permission": "PROJECT.UPDATE"})
    assert no_entity.status_code == 200
    assert no_entity.json()["allowed"] is False
    assert no_entity.json()["clause"] == "no-entity"


@SHARED_LOOP
async def test_staff_are_allowed_every_permission_on_every_entity(read_only: ReadOnly) -> None:
    client, runtime, tree, people = read_only.client, read_only.runtime, read_only.tree, read_only.people
    staff = people.callers["staff"]
    denied = []
    for permission in runtime.policy.permissions:
        for name in Tree.__dataclass_fields__:
            body = await check(client, staff, permission, tree[name])
            if body["allowed"] is not True:
                denied.append((permission, name, body))
    assert denied == []


@SHARED_LOOP
@pytest.mark.parametrize("permission", ["PROJECT.FLY", "project.update", "STAFF"])
async def test_unknown_permission_is_400(read_only: ReadOnly, permission: str) -> None:
    client, tree, people = read_only.client, read_only.tree, read_only.people
    for who in ("owner", "staff"):
        response = await post_check(
            client,
            people.callers[who],
            {"permission": permission, "entity": {"type": "project", "uuid": str(tree.web.uuid)}},
        )
        assert response.status_code == 400
        assert list(response.json()) == ["permission"]


@SHARED_LOOP
async def test_unknown_entity_is_404(read_only: ReadOnly) -> None:
    client, tree, people = read_only.client, read_only.tree, read_only.people
    for who in ("owner", "staff"):
        caller = people.callers[who]
        missing = await post_check(
            client, caller, {"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": str(uuid.uuid4())}}
        )
        assert missing.status_code == 404
        assert "detail" in missing.json()
        wrong_type = await post_check(
            client, caller, {"permission": "PROJECT.UPDATE", "entity": {"type": "resource", "uuid": str(tree.web.uuid)}}
        )
        assert wrong_type.status_code == 404
        unknown_type = await post_check(
            client, caller, {"permission": "PROJECT.UPDATE", "entity": {"type": "galaxy", "uuid": str(tree.web.uuid)}}
        )
        assert unknown_type.status_code == 400
        assert list(unknown_type.json()) == ["entity"]


async def test_deleted_entity_is_404(client: AsyncClient, tree: Tree, people: Population) -> None:
    staff = people.callers["staff"]
    assert (await check(client, staff, "RESOURCE.LIST", tree.data_vm))["allowed"] is True
    assert (await client.delete(f"/api/entities/{tree.data_vm.uuid}/", headers=staff.headers)).status_code == 204
    response = await post_check(
        client, staff, {"permission": "RESOURCE.LIST", "entity": {"type": "resource", "uuid": str(tree.data_vm.uuid)}}
    )
    assert response.status_code == 404


@SHARED_LOOP
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"entity": {"type": "project", "uuid": str(uuid.UUID(int=1))}},
        {"permission": "PROJECT.UPDATE", "entity": {"type": "project"}},
        {"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": "nope"}},
        {"permission": "PROJECT.UPDATE", "target": "x"},
    ],
)
async def test_malformed_check_is_400(read_only: ReadOnly, body: dict[str, Any]) -> None:
    client, people = read_only.client, read_only.people
    response = await post_check(client, people.callers["owner"], body)
    assert response.status_code == 400
    assert isinstance(response.json(), dict)


@SHARED_LOOP
@pytest.mark.parametrize(
    "spell", [str.upper, lambda text: text.replace("-", ""), lambda text: text[:18].upper() + text[18:]]
)
async def test_a_target_uuid_in_another_spelling_is_the_same_target(read_only: ReadOnly, spell: Any) -> None:
    client, people, tree = read_only.client, read_only.people, read_only.tree
    canonical = await check(client, people.callers["owner"], "RESOURCE.UPDATE", tree.web_vm)
    body = {"permission": "RESOURCE.UPDATE", "entity": {"type": "resource", "uuid": spell(str(tree.web_vm.uuid))}}
    response = await post_check(client, people.callers["owner"], body)
    assert response.status_code == 200, response.text
    assert response.json() == canonical and canonical["allowed"] is True


@SHARED_LOOP
@pytest.mark.parametrize(
    "text",
    [
        "nope",
        "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
        "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "6ba7b810-9dad11d1-80b4-00c04fd430c8",
        "6ba7b8109dad11d180b400c04fd430c8\n",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8\n",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c",
        "",
    ],
)
async def test_a_target_uuid_that_is_no_uuid_is_400_naming_the_field(read_only: ReadOnly, text: str) -> None:
    client, people = read_only.client, read_only.people
    body = {"permission": "RESOURCE.UPDATE", "entity": {"type": "resource", "uuid": text}}
    response = await post_check(client, people.callers["owner"], body)
    assert response.status_code == 400
    assert response.json() == {"entity.uuid": ["Must be a valid UUID."]}


@SHARED_LOOP
async def test_an_unknown_target_is_named_in_the_spelling_the_mirror_keys(read_only: ReadOnly) -> None:
    client, people = read_only.client, read_only.people
    body = {"permission": "RESOURCE.UPDATE", "entity": {"type": "resource", "uuid": "6BA7B8109DAD11D180B400C04FD430C8"}}
    response = await post_check(client, people.callers["owner"], body)
    assert response.status_code == 404
    assert response.json() == {"detail": "resource with uuid 6ba7b810-9dad-11d1-80b4-00c04fd430c8 does not exist."}


@SHARED_LOOP
async def test_check_needs_a_valid_token(read_only: ReadOnly) -> None:
    client, tree = read_only.client, read_only.tree
    body = {"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": str(tree.web.uuid)}}
    assert (await client.post("/api/authz/check/", json=body)).status_code == 401
    bad = await client.post("/api/authz/check/", json=body, headers={"Authorization": "Token nonsense"})
    assert bad.status_code == 401
    assert bad.json() == {"detail": "Invalid token."}


async def test_revocation_between_two_requests_denies_the_second(
    client: AsyncClient,
    staff: Caller,
    tree: Tree,
    people: Population,
) -> None:
    owner = people.callers["owner"]
    first = await check(client, owner, "RESOURCE.UPDATE", tree.web_vm)
    assert first["allowed"] is True
    revoked = await client.delete(f"/api/role-assignments/{people.assignments['owner'].uuid}/", headers=staff.headers)
    assert revoked.status_code == 204
    assert await denied(client, owner, "RESOURCE.UPDATE", tree.web_vm)
    # the other holders are untouched
    assert (await check(client, people.callers["pm"], "RESOURCE.UPDATE", tree.web_vm))["allowed"] is True


async def test_grant_between_two_requests_allows_the_second(
    client: AsyncClient,
    staff: Caller,
    tree: Tree,
    people: Population,
) -> None:
    nobody = people.callers["nobody"]
    assert await denied(client, nobody, "PROJECT.UPDATE", tree.billing)
    granted = await client.post(
        "/api/role-assignments/",
        headers=staff.headers,
        json={
            "user": str(nobody.user.uuid),
            "role": "CUSTOMER.OWNER",
            "scope": {"type": "customer", "uuid": str(tree.initech.uuid)},
        },
    )
    assert granted.status_code == 201
    after = await check(client, nobody, "PROJECT.UPDATE", tree.billing)
    assert after["allowed"] is True
    assert granted.json()["uuid"] in str(after["reason"])


async def test_assignment_denies_once_its_expiration_time_passes(
    client: AsyncClient,
    staff: Caller,
    runtime: Runtime,
    tree: Tree,
    people: Population,
) -> None:
    nobody = people.callers["nobody"]
    expires = datetime.now(UTC) + timedelta(seconds=1.2)
    granted = await client.post(
        "/api/role-assignments/",
        headers=staff.headers,
        json={
            "user": str(nobody.user.uuid),
            "role": "PROJECT.ADMIN",
            "scope": {"type": "project", "uuid": str(tree.web.uuid)},
            "expiration_time": expires.isoformat(),
        },
    )
    assert granted.status_code == 201, granted.text
    before = await check(client, nobody, "RESOURCE.UPDATE", tree.web_vm)
    assert before["allowed"] is True
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    assert await denied(client, nobody, "RESOURCE.UPDATE", tree.web_vm)
    # the row is still active (no sweep has run); the engine alone judges it expired
    listed = await client.get("/api/role-assignments/", headers=staff.headers, params={"user": str(nobody.user.uuid)})
    assert [row["is_active"] for row in listed.json()] == [True]


async def test_assignment_expired_or_deactivated_in_the_database_denies_after_refresh(
    client: AsyncClient,
    runtime: Runtime,
    tree: Tree,
    people: Population,
) -> None:
    """A host that edits rows directly (or a sweep) is honoured once FactSync refreshes the row."""
    owner, pm = people.callers["owner"], people.callers["pm"]
    assert (await check(client, owner, "PROJECT.UPDATE", tree.web))["allowed"] is True
    assert (await check(client, pm, "PROJECT.UPDATE", tree.web))["allowed"] is True
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with runtime.session() as session:
        await session.execute(
            update(RoleAssignment)
            .where(RoleAssignment.uuid == people.assignments["owner"].uuid)
            .values(expiration_time=past)
        )
        await session.execute(
            update(RoleAssignment).where(RoleAssignment.uuid == people.assignments["pm"].uuid).values(is_active=False)
        )
        await session.commit()
        sync = FactSync(runtime)
        await sync.refresh_assignment(session, str(people.assignments["owner"].uuid))
        await sync.refresh_assignment(session, str(people.assignments["pm"].uuid))
    assert await denied(client, owner, "PROJECT.UPDATE", tree.web)
    assert await denied(client, pm, "PROJECT.UPDATE", tree.web)
    assert (await check(client, people.callers["member"], "RESOURCE.LIST", tree.web))["allowed"] is True


async def test_revoking_one_of_two_roles_keeps_the_other(
    client: AsyncClient,
    runtime: Runtime,
    tree: Tree,
    people: Population,
) -> None:
    pm = people.callers["pm"]
    extra = await grant(runtime, pm.user, "PROJECT.ADMIN", tree.web)
    await revoke(runtime, people.assignments["pm"])
    body = await check(client, pm, "RESOURCE.UPDATE", tree.web_vm)
    assert body["allowed"] is True
    assert str(extra.uuid) in str(body["reason"])
    assert (await check(client, pm, "PROJECT.UPDATE", tree.web))["allowed"] is False


def test_rule_line_reads_the_policy_file() -> None:
    """The helper the table relies on finds real rules and nothing else."""
    assert re.fullmatch(r"roles\.csv:\d+", rule_line("CUSTOMER.OWNER", "PROJECT.UPDATE"))
    with pytest.raises(AssertionError):
        rule_line("PROJECT.MEMBER", "PROJECT.DELETE")
