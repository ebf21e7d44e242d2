"""Entities that permissions are checked against (customers, projects, resources, …)."""

from __future__ import annotations

import uuid as uuid_lib
from datetime import timedelta

from advanced_alchemy.base import BigIntAuditBase
from sqlalchemy import BigInteger, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column


class Entity(BigIntAuditBase):
    """A node of the entity tree; which types may parent which is declared in ``policies/``."""

    __tablename__ = "entity"
    __table_args__ = (Index("ix_entity_updated_at", "updated_at"),)

    uuid: Mapped[uuid_lib.UUID] = mapped_column(Uuid, unique=True, default=uuid_lib.uuid4)
    type: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("entity.id", ondelete="RESTRICT"), nullable=True, index=True
    )


class EntityDeletion(BigIntAuditBase):
    """The deletion of an entity through the service, dated by ``updated_at``: how other workers learn of it.

    A poll cannot see a deleted row, and counting the entities to notice one cost PostgreSQL 11-16 ms at 100,000
    entities, on every poll of every worker. A poll reads the deletions made since its last look instead. They are
    kept for :data:`DELETION_RETENTION`; a deletion made around the service leaves none, and the full comparison of
    uuids (``FactWatcher.FULL_CHECK``) finds it.
    """

    __tablename__ = "entity_deletion"
    __table_args__ = (Index("ix_entity_deletion_updated_at", "updated_at"),)

    uuid: Mapped[uuid_lib.UUID] = mapped_column(Uuid)


DELETION_RETENTION = timedelta(hours=1)
"""How long a deletion is kept: far longer than any poll looks back, or a worker stalls and is still trusted."""
