"""Entities that permissions are checked against (customers, projects, resources, …)."""

from __future__ import annotations

import uuid as uuid_lib

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
