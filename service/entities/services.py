"""The entity registry: the tree that role assignments and token bindings refer to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import delete, exists, select

from service.authz.models import RoleAssignment
from service.authz.sync import FactSync
from service.db.transaction import after_commit
from service.entities.models import DELETION_RETENTION, Entity, EntityDeletion
from service.entities.schemas import EntityCreate, EntityUpdate
from service.errors import Conflict, ValidationError
from service.pagination import Window
from service.pats.services import mark_bindings_deleted
from service.runtime import DomainService

if TYPE_CHECKING:
    from service.runtime import Runtime

TREE_LIMIT = 2000


class EntityRepository(SQLAlchemyAsyncRepository[Entity]):
    """Data access for entities."""

    model_type = Entity


class EntityService(DomainService[Entity, EntityRepository]):
    """Registers, moves and deletes entities, keeping the policy engine's tree in step."""

    repository_type = EntityRepository

    def __init__(self, session: Any, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(session=session, runtime=runtime, **kwargs)
        self.sync = FactSync(runtime)

    async def parent_uuids(self, entities: Sequence[Entity]) -> dict[int, UUID]:
        """Parent id -> parent UUID for the parents of ``entities``, in one query."""
        parent_ids = {entity.parent_id for entity in entities if entity.parent_id is not None}
        if not parent_ids:
            return {}
        rows = await self.repository.session.execute(select(Entity.id, Entity.uuid).where(Entity.id.in_(parent_ids)))
        return {row.id: row.uuid for row in rows}

    async def listing(
        self, window: Window, *, entity_type: str | None = None, parent: UUID | None = None
    ) -> tuple[Sequence[Entity], int]:
        """A page of entities in registration order, optionally of one type or directly under ``parent``."""
        filters: list[Any] = []
        if entity_type is not None:
            filters.append(Entity.type == entity_type)
        if parent is not None:
            parent_entity = await self.get_one_or_none(uuid=parent)
            filters.append(Entity.parent_id == (parent_entity.id if parent_entity else -1))
        return await self.get_many_and_count(window.filter, *filters, order_by=Entity.id.asc())

    async def tree(self, search: str = "", limit: int = TREE_LIMIT) -> list[tuple[Entity, int]]:
        """Entities depth-first under their parents, each with its depth (at most ``limit`` rows read).

        With ``search``, only the entities whose name contains it, and their ancestors.
        """
        rows = list(await self.repository.session.scalars(select(Entity).order_by(Entity.name, Entity.id).limit(limit)))
        by_id = {entity.id: entity for entity in rows}
        keep = set(by_id)
        if search:
            keep = set()
            for entity in rows:
                if search.casefold() in entity.name.casefold():
                    node: Entity | None = entity
                    while node is not None and node.id not in keep:
                        keep.add(node.id)
                        node = by_id.get(node.parent_id) if node.parent_id is not None else None
        children: dict[int | None, list[Entity]] = {}
        for entity in rows:
            if entity.id in keep:
                parent = entity.parent_id if entity.parent_id in by_id else None
                children.setdefault(parent, []).append(entity)
        ordered: list[tuple[Entity, int]] = []
        pending = [(child, 0) for child in reversed(children.get(None, []))]
        while pending:  # depth-first without recursion: a self-nesting type may nest deeper than Python's stack
            entity, depth = pending.pop()
            ordered.append((entity, depth))
            pending.extend((child, depth + 1) for child in reversed(children.get(entity.id, [])))
        return ordered

    async def _parent(self, entity_type: str, parent_uuid: UUID | None) -> Entity | None:
        policy = self.runtime.policy
        if entity_type not in policy.entity_types:
            raise ValidationError(
                {"type": [f"Unknown entity type '{entity_type}'. Expected one of: {sorted(policy.entity_types)}."]}
            )
        parent = None
        if parent_uuid is not None:
            parent = await self.get_one_or_none(uuid=parent_uuid)
            if parent is None:
                raise ValidationError({"parent": [f"Entity with uuid {parent_uuid} does not exist."]})
        if not policy.may_parent(entity_type, parent.type if parent else None):
            allowed = policy.entity_types[entity_type]
            expected = f"a parent of type {', '.join(allowed)}" if allowed else "no parent"
            raise ValidationError({"parent": [f"An entity of type '{entity_type}' must have {expected}."]})
        return parent

    async def register(self, data: EntityCreate) -> Entity:
        """Create an entity under a parent of an allowed type."""
        parent = await self._parent(data.type, data.parent)
        if data.uuid is not None and await self.exists(uuid=data.uuid):
            raise ValidationError({"uuid": [f"Entity with uuid {data.uuid} already exists."]})
        fields: dict[str, Any] = {"type": data.type, "name": data.name, "parent_id": parent.id if parent else None}
        if data.uuid is not None:
            fields["uuid"] = data.uuid
        entity = await self.create(Entity(**fields))
        after_commit(self.repository.session, self.sync.refresh_entity, self.repository.session, str(entity.uuid))
        return entity

    async def change(self, entity: Entity, data: EntityUpdate) -> Entity:
        """Rename or move an entity; a move under its own subtree is refused."""
        if data.name is not msgspec.UNSET:
            entity.name = data.name
        if data.parent is not msgspec.UNSET:
            parent = await self._parent(entity.type, data.parent)
            if parent is not None and str(entity.uuid) in self.runtime.policy.ancestors(str(parent.uuid)):
                raise ValidationError({"parent": ["An entity cannot be moved below itself."]})
            entity.parent_id = parent.id if parent else None
        entity = await self.update(entity)
        after_commit(self.repository.session, self.sync.refresh_entity, self.repository.session, str(entity.uuid))
        return entity

    async def remove(self, entity: Entity) -> None:
        """Delete a leaf entity that no live role is held on (409 otherwise).

        Revoked and expired assignments go with it; token bindings to it are marked deleted. The deletion is recorded
        for other workers' polls (deletions older than ``DELETION_RETENTION`` are dropped meanwhile).
        """
        session = self.repository.session
        if await session.scalar(select(exists().where(Entity.parent_id == entity.id))):
            raise Conflict("Cannot delete an entity that has children; delete or move them first.")
        live = exists().where(
            RoleAssignment.entity_id == entity.id,
            RoleAssignment.is_active.is_(True),
            RoleAssignment.expiration_time.is_(None) | (RoleAssignment.expiration_time > datetime.now(UTC)),
        )
        if await session.scalar(select(live)):
            raise Conflict("Cannot delete an entity on which roles are held; revoke them first.")
        await session.execute(delete(RoleAssignment).where(RoleAssignment.entity_id == entity.id))
        now = datetime.now(UTC)
        tokens = await mark_bindings_deleted(session, str(entity.uuid), now)
        await self.delete(entity.id)
        await session.execute(delete(EntityDeletion).where(EntityDeletion.updated_at < now - DELETION_RETENTION))
        session.add(EntityDeletion(uuid=entity.uuid))
        after_commit(session, self.sync.refresh_entity, session, str(entity.uuid))
        for token_hash in tokens:
            after_commit(session, self.runtime.forget_token, token_hash)
