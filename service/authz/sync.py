"""Keeps the policy engine's in-memory facts equal to the database.

At start-up every entity and active assignment is loaded; after each committed change the service refreshes
just the rows it touched, so a role revoked a moment ago is already gone from the next decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from service.authz.models import RoleAssignment
from service.entities.models import Entity
from service.policy import AssignmentFact, EntityFact

if TYPE_CHECKING:
    from service.runtime import Runtime

_Parent = aliased(Entity)


def _entity_rows() -> Select[Any]:
    return select(Entity.uuid, Entity.type, _Parent.uuid).outerjoin(_Parent, Entity.parent_id == _Parent.id)


def _assignment_rows() -> Select[Any]:
    return (
        select(RoleAssignment.uuid, RoleAssignment.user_id, RoleAssignment.role, Entity.uuid,
               RoleAssignment.expiration_time)
        .join(Entity, RoleAssignment.entity_id == Entity.id)
        .where(RoleAssignment.is_active.is_(True))
    )


def _entity_fact(row: tuple[object, str, object]) -> EntityFact:
    uuid, entity_type, parent = row
    return EntityFact(uuid=str(uuid), type=entity_type, parent=str(parent) if parent else None)


def _assignment_fact(row: tuple[object, int, str, object, datetime | None]) -> AssignmentFact:
    uuid, user_id, role, entity, expires_at = row
    return AssignmentFact(uuid=str(uuid), user_id=user_id, role=role, entity=str(entity), expires_at=expires_at)


def _in_tree_order(facts: list[EntityFact]) -> Iterable[EntityFact]:
    """Parents before children, so the engine can check each parent link as it arrives."""
    by_parent: dict[str | None, list[EntityFact]] = {}
    for fact in facts:
        by_parent.setdefault(fact.parent, []).append(fact)
    known = {fact.uuid for fact in facts}
    queue = [fact for fact in facts if fact.parent is None or fact.parent not in known]
    while queue:
        fact = queue.pop()
        yield fact
        queue.extend(by_parent.get(fact.uuid, []))


class FactSync:
    """Loads facts into ``runtime.policy`` and refreshes single rows after changes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def load_all(self) -> None:
        """Replace the engine's facts with the database's."""
        async with self.runtime.session() as session:
            entities = [_entity_fact(row) for row in (await session.execute(_entity_rows())).tuples()]
            assignments = [_assignment_fact(row) for row in (await session.execute(_assignment_rows())).tuples()]
        self.runtime.policy.replace_facts(list(_in_tree_order(entities)), assignments)

    async def refresh_entity(self, session: AsyncSession, uuid: str) -> None:
        """Mirror one entity as it now is in the database (gone: forgotten)."""
        row = (await session.execute(_entity_rows().where(Entity.uuid == UUID(uuid)))).tuples().first()
        if row is None:
            self.runtime.policy.remove_entity(uuid)
        else:
            self.runtime.policy.put_entity(_entity_fact(row))

    async def refresh_assignment(self, session: AsyncSession, uuid: str) -> None:
        """Mirror one assignment as it now is (inactive or gone: forgotten)."""
        statement = _assignment_rows().where(RoleAssignment.uuid == UUID(uuid))
        row = (await session.execute(statement)).tuples().first()
        if row is None:
            self.runtime.policy.remove_assignment(uuid)
        else:
            self.runtime.policy.put_assignment(_assignment_fact(row))
