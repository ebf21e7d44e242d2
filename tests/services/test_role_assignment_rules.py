"""The rules ``RoleAssignmentService`` enforces, called directly: what may be granted, to whom, on what, how long."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from service.authz.models import RoleAssignment
from service.authz.schemas import EntityRef, RoleAssignmentCreate
from service.authz.services import RoleAssignmentService
from service.db.transaction import commit
from service.entities.models import Entity
from service.events.services import EventType
from service.runtime import Runtime
from service.users.models import User
from tests.support.factories import make_user
from tests.support.services import events_of, refusal
from tests.support.world import Tree, World


def request(user: User, role: str, entity: Entity, *, expires_in: timedelta | None = None) -> RoleAssignmentCreate:
    """A grant of ``role`` on ``entity`` to ``user``, ending ``expires_in`` from now (never, by default)."""
    expiration = datetime.now(UTC) + expires_in if expires_in is not None else None
    ref = EntityRef(type=entity.type, uuid=entity.uuid)
    return RoleAssignmentCreate(user=user.uuid, role=role, scope=ref, expiration_time=expiration)


async def test_an_unknown_role_is_named_with_the_declared_ones(
    roles: RoleAssignmentService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    errors = await refusal(session, roles.grant(request(world.owner, "NO.SUCH", world.tree.web), world.staff.id))
    assert errors == {"role": [f"Unknown role 'NO.SUCH'. Expected one of: {sorted(runtime.policy.roles)}."]}


async def test_an_unknown_user_is_refused(roles: RoleAssignmentService, session: AsyncSession, world: World) -> None:
    data = request(world.owner, "PROJECT.MANAGER", world.tree.web)
    data.user = uuid.uuid4()
    errors = await refusal(session, roles.grant(data, world.staff.id))
    assert errors == {"user": [f"User with uuid {data.user} does not exist."]}


async def test_a_role_is_held_only_on_entities_of_its_type(
    roles: RoleAssignmentService, session: AsyncSession, world: World
) -> None:
    errors = await refusal(
        session, roles.grant(request(world.owner, "PROJECT.MANAGER", world.tree.acme), world.staff.id)
    )
    assert errors == {"scope": ["Role PROJECT.MANAGER is held on entities of type 'project', not 'customer'."]}


async def test_a_scope_naming_the_wrong_type_looks_absent(
    roles: RoleAssignmentService, session: AsyncSession, world: World
) -> None:
    data = request(world.owner, "CUSTOMER.OWNER", world.tree.web)
    data.scope = EntityRef(type="customer", uuid=world.tree.web.uuid)  # web is a project
    errors = await refusal(session, roles.grant(data, world.staff.id))
    assert errors == {"scope": [f"customer with uuid {world.tree.web.uuid} does not exist."]}


async def test_an_expiration_in_the_past_is_refused(
    roles: RoleAssignmentService, session: AsyncSession, world: World
) -> None:
    data = request(world.owner, "PROJECT.MANAGER", world.tree.web, expires_in=timedelta(seconds=-1))
    errors = await refusal(session, roles.grant(data, world.staff.id))
    assert errors == {"expiration_time": ["Expiration time must be in the future."]}


async def test_every_field_error_is_reported_at_once(
    roles: RoleAssignmentService, session: AsyncSession, world: World
) -> None:
    data = request(world.owner, "NO.SUCH", world.tree.web, expires_in=timedelta(seconds=-1))
    data.user = uuid.uuid4()
    errors = await refusal(session, roles.grant(data, world.staff.id))
    assert sorted(errors) == ["expiration_time", "role", "user"]


async def test_a_role_already_held_is_not_granted_twice(
    roles: RoleAssignmentService, session: AsyncSession, world: World
) -> None:
    errors = await refusal(
        session, roles.grant(request(world.owner, "CUSTOMER.OWNER", world.tree.acme), world.staff.id)
    )
    assert errors == {"role": ["User owner already holds CUSTOMER.OWNER on this customer."]}


async def test_an_expired_assignment_is_closed_and_the_role_granted_again(
    roles: RoleAssignmentService, session: AsyncSession, world: World
) -> None:
    data = request(world.owner, "PROJECT.MANAGER", world.tree.web, expires_in=timedelta(hours=1))
    first = await roles.grant(data, world.staff.id)
    await session.execute(
        update(RoleAssignment)
        .where(RoleAssignment.id == first.id)
        .values(expiration_time=datetime.now(UTC) - timedelta(seconds=1))
    )
    second = await roles.grant(request(world.owner, "PROJECT.MANAGER", world.tree.web), world.staff.id)
    await session.refresh(first)
    assert first.is_active is False
    assert second.is_active is True


async def test_a_grant_reaches_the_policy_once_committed(
    roles: RoleAssignmentService, session: AsyncSession, runtime: Runtime, tree: Tree
) -> None:
    manager = await make_user(runtime, "manager")
    await roles.grant(request(manager, "PROJECT.MANAGER", tree.web), manager.id)
    assert not runtime.policy.may_delegate(manager.id, False, "PROJECT.UPDATE", str(tree.web.uuid))
    await commit(session)
    assert runtime.policy.may_delegate(manager.id, False, "PROJECT.UPDATE", str(tree.web.uuid))


async def test_a_grant_records_who_granted_it(
    roles: RoleAssignmentService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    manager = await make_user(runtime, "manager")
    await roles.grant(request(manager, "PROJECT.MANAGER", world.tree.web), world.staff.id)
    granted = (await events_of(session, EventType.ROLE_GRANTED))[-1]
    assert granted.user_id == manager.id
    assert granted.actor_id == world.staff.id


async def test_a_revocation_ends_the_assignment_now(
    roles: RoleAssignmentService, runtime: Runtime, world: World
) -> None:
    manager = await make_user(runtime, "manager")
    assignment = await roles.grant(request(manager, "PROJECT.MANAGER", world.tree.web), world.staff.id)
    await roles.revoke(assignment, world.staff.id)
    assert assignment.is_active is False
    assert assignment.expiration_time is not None


async def test_a_revocation_reaches_the_policy_at_once(
    roles: RoleAssignmentService, runtime: Runtime, world: World
) -> None:
    manager = await make_user(runtime, "manager")
    assignment = await roles.grant(request(manager, "PROJECT.MANAGER", world.tree.web), world.staff.id)
    await roles.revoke(assignment, world.staff.id)
    assert runtime.policy.delegable_scopes(manager.id, False) == []


async def test_revoking_twice_records_one_revocation(
    roles: RoleAssignmentService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    manager = await make_user(runtime, "manager")
    assignment = await roles.grant(request(manager, "PROJECT.MANAGER", world.tree.web), world.staff.id)
    await roles.revoke(assignment, world.staff.id)
    await roles.revoke(assignment, world.staff.id)
    assert len(await events_of(session, EventType.ROLE_REVOKED)) == 1
