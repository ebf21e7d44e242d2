"""The user account."""

from __future__ import annotations

import uuid as uuid_lib
from datetime import datetime

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column


class User(BigIntAuditBase):
    """A person or robot that holds roles and tokens. ``id`` is Waldur's integer key, ``uuid`` its public one."""

    __tablename__ = "user_account"
    __table_args__ = (Index("ix_user_account_updated_at", "updated_at"),)

    uuid: Mapped[uuid_lib.UUID] = mapped_column(Uuid, unique=True, default=uuid_lib.uuid4)
    username: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    mobile_number: Mapped[str] = mapped_column(String(64), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    token_lifetime: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    can_use_personal_access_tokens: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    last_login: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)

    @property
    def full_name(self) -> str:
        """First and last name, as Waldur shows it."""
        return f"{self.first_name} {self.last_name}".strip()
