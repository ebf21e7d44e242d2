"""The rules ``EntityService`` enforces, called directly: types, parents, uuids, moves and removal."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.authz.models import RoleAssignment
from service.db.transaction import commit
from service.entities.schemas import EntityCreate, EntityUpdate
from service.entities.services import EntityService
from service.pats.services import PatService
from service.runtime import Runtime
from tests.support.factories import grant, make_user, revoke
from tests.support.services import pat_request, principal_of, refusal
from tests.support.world import Tree, World


async def test_an_unknown_type_is_named_with_the_declared_ones(
    entities: EntityService, session: AsyncSession, runtime: Runtime
) -> None:
    errors = await refusal(session, entities.register(EntityCreate(type="galaxy", name="Milky Way")))
    assert errors == {
        "type": [f"Unknown entity type 'galaxy'. Expected one of: {sorted(runtime.policy.entity_types)}."]
    }


async def test_an_unknown_parent_is_refused(entities: EntityService, session: AsyncSession) -> None:
    missing = uuid.uuid4()
    errors = await refusal(session, entities.register(EntityCreate(type="project", name="P", parent=missing)))
    assert errors == {"parent": [f"Entity with uuid {missing} does not exist."]}


async def test_a_project_needs_a_customer_above_it(entities: EntityService, session: AsyncSession) -> None:
    errors = await refusal(session, entities.register(EntityCreate(type="project", name="orphan")))
    assert errors == {"parent": ["An entity of type 'project' must have a parent of type customer."]}


async def test_a_resource_may_not_sit_directly_under_a_customer(
    entities: EntityService, session: AsyncSession, tree: Tree
) -> None:
    data = EntityCreate(type="resource", name="vm", parent=tree.acme.uuid)
    errors = await refusal(session, entities.register(data))
    assert errors == {"parent": ["An entity of type 'resource' must have a parent of type project."]}


async def test_a_customer_takes_no_parent(entities: EntityService, session: AsyncSession, tree: Tree) -> None:
    errors = await refusal(session, entities.register(EntityCreate(type="customer", name="Sub", parent=tree.acme.uuid)))
    assert errors == {"parent": ["An entity of type 'customer' must have no parent."]}


async def test_a_host_systems_uuid_is_kept(entities: EntityService) -> None:
    chosen = uuid.uuid4()
    entity = await entities.register(EntityCreate(type="customer", name="Synced", uuid=chosen))
    assert entity.uuid == chosen


async def test_a_uuid_already_registered_is_refused(entities: EntityService, session: AsyncSession, tree: Tree) -> None:
    data = EntityCreate(type="customer", name="Again", uuid=tree.acme.uuid)
    errors = await refusal(session, entities.register(data))
    assert errors == {"uuid": [f"Entity with uuid {tree.acme.uuid} already exists."]}


async def test_a_registration_reaches_the_policy_under_its_parent_once_committed(
    entities: EntityService, session: AsyncSession, runtime: Runtime, tree: Tree
) -> None:
    project = await entities.register(EntityCreate(type="project", name="New", parent=tree.acme.uuid))
    assert runtime.policy.ancestors(str(project.uuid)) == []
    await commit(session)
    assert runtime.policy.ancestors(str(project.uuid)) == [str(project.uuid), str(tree.acme.uuid)]


async def test_a_move_reaches_the_policy_once_committed(
    entities: EntityService, session: AsyncSession, runtime: Runtime, tree: Tree
) -> None:
    await entities.change(await entities.get(tree.web.id), EntityUpdate(parent=tree.initech.uuid))
    assert runtime.policy.ancestors(str(tree.web_vm.uuid))[-1] == str(tree.acme.uuid)
    await commit(session)
    assert runtime.policy.ancestors(str(tree.web_vm.uuid))[-1] == str(tree.initech.uuid)


async def test_a_move_under_a_parent_of_the_wrong_type_is_refused(
    entities: EntityService, session: AsyncSession, tree: Tree
) -> None:
    web = await entities.get(tree.web.id)
    errors = await refusal(session, entities.change(web, EntityUpdate(parent=tree.data.uuid)))
    assert errors == {"parent": ["An entity of type 'project' must have a parent of type customer."]}


async def test_a_rename_keeps_the_parent(entities: EntityService, tree: Tree) -> None:
    web = await entities.change(await entities.get(tree.web.id), EntityUpdate(name="Website"))
    assert web.parent_id == tree.acme.id


async def test_a_removal_takes_revoked_assignments_with_it(
    entities: EntityService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    manager = await make_user(runtime, "manager")
    await revoke(runtime, await grant(runtime, manager, "PROJECT.MANAGER", world.tree.billing), actor=world.staff)
    await entities.remove(await entities.get(world.tree.billing_db.id))
    await entities.remove(await entities.get(world.tree.billing.id))
    left = await session.scalars(select(RoleAssignment).where(RoleAssignment.entity_id == world.tree.billing.id))
    assert list(left) == []


async def test_a_removal_leaves_the_policy_once_committed(
    entities: EntityService, session: AsyncSession, runtime: Runtime, tree: Tree
) -> None:
    await entities.remove(await entities.get(tree.web_vm.id))
    assert runtime.policy.entity(str(tree.web_vm.uuid)) is not None
    await commit(session)
    assert runtime.policy.entity(str(tree.web_vm.uuid)) is None


async def test_a_removal_marks_token_bindings_to_it_deleted(
    entities: EntityService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    pats = PatService(session=session, runtime=runtime)
    request = pat_request(scopes=("RESOURCE.LIST",), bindings=(("resource", world.tree.web_vm.uuid),))
    token, _ = await pats.issue(await pats.owner(principal_of(world.owner)), request)
    await entities.remove(await entities.get(world.tree.web_vm.id))
    await session.refresh(token)
    assert [binding.get("deleted") is not None for binding in token.allowed_scopes] == [True]
