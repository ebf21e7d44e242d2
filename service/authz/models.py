"""Role assignments: user, role and entity, the dynamic facts the policy decides on."""

from __future__ import annotations

import uuid as uuid_lib
from datetime import datetime

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column


class RoleAssignment(BigIntAuditBase):
    """``user`` holds ``role`` on ``entity`` until ``expiration_time`` (if any) while ``is_active``."""

    __tablename__ = "role_assignment"
    __table_args__ = (
        Index("ix_role_assignment_user_active", "user_id", "is_active"),
        Index("ix_role_assignment_updated_at", "updated_at"),
        # one active assignment per user, role and entity, even when two identical grants race
        Index(
            "ux_role_assignment_active",
            "user_id",
            "role",
            "entity_id",
            unique=True,
            postgresql_where=text("is_active"),
            sqlite_where=text("is_active"),
        ),
    )

    uuid: Mapped[uuid_lib.UUID] = mapped_column(Uuid, unique=True, default=uuid_lib.uuid4)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("user_account.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(100))
    entity_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("entity.id", ondelete="RESTRICT"), index=True)
    expiration_time: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True
    )
