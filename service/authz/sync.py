"""Keeps the policy engine's in-memory facts equal to the database.

At start-up every entity and active assignment is loaded; after each committed change the service refreshes
just the rows it touched, so a role revoked a moment ago is already gone from the next decision in this worker.
Other workers and instances catch up through :class:`FactWatcher`, which polls the rows changed since its last
look (indexed ``updated_at``) every ``sync_interval_seconds``: a change is honoured everywhere within about that
time, on SQLite and PostgreSQL alike, with no machinery beyond the database all workers already share.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import Select, func, select
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


class FactWatcher:
    """Polls for entities and assignments changed by other workers and applies them to this worker's engine."""

    # Rows are re-read this far back, so a writer whose clock or commit lags a little is still seen.
    OVERLAP = timedelta(seconds=5)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.since = datetime.now(UTC) - self.OVERLAP

    async def poll(self) -> None:
        """Apply every change committed since the last poll; resynchronise fully when an entity was deleted."""
        started = datetime.now(UTC)
        policy = self.runtime.policy
        async with self.runtime.session() as session:
            entities = [_entity_fact(row) for row in
                        (await session.execute(_entity_rows().where(Entity.updated_at >= self.since))).tuples()]
            changed = [str(uuid) for uuid in await session.scalars(
                select(RoleAssignment.uuid).where(RoleAssignment.updated_at >= self.since))]
            live = {str(row[0]): _assignment_fact(row) for row in (await session.execute(
                _assignment_rows().where(RoleAssignment.updated_at >= self.since))).tuples()}
            total = await session.scalar(select(func.count()).select_from(Entity))
        for fact in _in_tree_order(entities):
            if policy.entity(fact.uuid) != fact:
                policy.put_entity(fact)
        for uuid in changed:
            fact = live.get(uuid)
            if fact is None:
                if policy.assignment(uuid) is not None:
                    policy.remove_assignment(uuid)
            elif policy.assignment(uuid) != fact:
                policy.put_assignment(fact)
        if total != policy.entity_count:
            await FactSync(self.runtime).load_all()
        self.since = started - self.OVERLAP
