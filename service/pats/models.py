"""Personal Access Tokens."""

from __future__ import annotations

import uuid as uuid_lib
from datetime import datetime

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import JSON, BigInteger, Boolean, ColumnElement, ForeignKey, Index, Integer, String, Uuid, and_, or_
from sqlalchemy.orm import Mapped, mapped_column

from service.crypto import PAT_DISPLAY_MAX_CHARS
from service.users.models import User


class PersonalAccessToken(BigIntAuditBase):
    """A scoped, expiring token. The plaintext is never stored: only its keyed hash and display prefix.

    ``allowed_scopes`` holds the bindings as ``[{"type": …, "uuid": …}]``, plus ``"deleted": <ISO time>`` once the
    entity was deleted (such a binding grants nothing, ever); ``allowed_networks`` canonical CIDRs.
    A rotated-out token keeps working until ``grace_until`` when a grace period is configured. Every token rotated
    from another shares its ``family_id``; ``rotated_at`` marks a token that was rotated out (see reuse detection
    in :mod:`service.pats.services`). ``updated_at`` moves when something verification depends on changes (not on
    use): other workers poll it to drop cached verifications.
    """

    __tablename__ = "personal_access_token"
    __table_args__ = (
        Index("ix_personal_access_token_user_active", "user_id", "is_active"),
        Index("ix_personal_access_token_updated_at", "updated_at"),
    )

    uuid: Mapped[uuid_lib.UUID] = mapped_column(Uuid, unique=True, default=uuid_lib.uuid4)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("user_account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(150))
    token_prefix: Mapped[str] = mapped_column(String(PAT_DISPLAY_MAX_CHARS))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    allowed_scopes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    allowed_networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    grace_until: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)
    family_id: Mapped[uuid_lib.UUID] = mapped_column(Uuid, index=True, default=uuid_lib.uuid4)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)
    expiry_notice_days: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    """The nearest ``pat_expiring`` notice already given (days before expiry); a rotation passes it on."""
    last_used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)
    last_used_ip: Mapped[str | None] = mapped_column(String(45), nullable=True, default=None)
    use_count: Mapped[int] = mapped_column(Integer, default=0)

    def is_usable(self, owner: User, now: datetime) -> bool:
        """Whether the token authenticates at ``now``; :meth:`usable_clause` is the same rule in SQL.

        Usable: its owner is active and allowed PATs, it has not expired, and it is active or rotated out within its
        grace period. The server's ``tokens.pat_enabled`` and the token's network ACL are checked per request.
        """
        return (
            owner.is_active
            and owner.can_use_personal_access_tokens
            and (self.is_active or self.grace_until is not None)
            and now < self.usable_until(self.expires_at, self.grace_until)
        )

    @classmethod
    def usable_clause(cls, now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
        """:meth:`is_usable` in SQL, for a statement that joins the token to its owner (``User``); never NULL."""
        return and_(
            User.is_active.is_(True),
            User.can_use_personal_access_tokens.is_(True),
            or_(cls.is_active.is_(True), cls.grace_until.is_not(None)),
            cls.expires_at > now,
            or_(cls.grace_until.is_(None), cls.grace_until > now),
        )

    @classmethod
    def retired_clause(cls, now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
        """In SQL: the token was rotated out and its grace period is over, so presenting it again is a reuse."""
        return and_(cls.rotated_at.is_not(None), or_(cls.grace_until.is_(None), cls.grace_until <= now))

    @staticmethod
    def usable_until(expires_at: datetime, grace_until: datetime | None) -> datetime:
        """When a usable token stops working by itself: at its expiry, or at the end of its grace period if sooner."""
        return min(expires_at, grace_until or expires_at)


def live_at(now: datetime) -> ColumnElement[bool]:
    """The tokens that still authenticate by their own state at ``now``: active, or rotated out and still in grace."""
    return PersonalAccessToken.is_active.is_(True) | (PersonalAccessToken.grace_until > now)
