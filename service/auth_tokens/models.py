"""The legacy (Waldur/DRF-style) auth token: one per user."""

from __future__ import annotations

from datetime import datetime, timedelta

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ColumnElement, ForeignKey, Index, LargeBinary, String, and_, or_
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.users.models import User


class AuthToken(BigIntAuditBase):
    """A user's legacy key, stored as a keyed hash (lookup) and AEAD ciphertext (so login can return it again).

    ``refreshed_at`` is Waldur's sliding ``created``: the token expires ``user.token_lifetime`` seconds after it,
    and use moves it forward (debounced). ``expires_at`` (``refreshed_at`` + lifetime, null for no expiry) is kept
    beside it so that "active tokens" is a plain indexed filter. ``updated_at`` changes when the key is regenerated.
    """

    __tablename__ = "auth_token"
    __table_args__ = (Index("ix_auth_token_updated_at", "updated_at"),)

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("user_account.id", ondelete="CASCADE"), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    refreshed_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, index=True)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def is_usable(self, now: datetime) -> bool:
        """Whether the key authenticates at ``now``: its owner is active and it has not expired.

        :meth:`usable_clause` is the same rule in SQL.
        """
        return self.user.is_active and (self.expires_at is None or now < self.expires_at)

    @classmethod
    def usable_clause(cls, now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
        """:meth:`is_usable` in SQL, for a statement that joins the token to its owner (``User``); never NULL."""
        return and_(User.is_active.is_(True), or_(cls.expires_at.is_(None), cls.expires_at > now))

    @staticmethod
    def expiry_after(refreshed_at: datetime, lifetime: float | None) -> datetime | None:
        """When a key refreshed at ``refreshed_at`` expires, given its owner's ``token_lifetime`` (None: never)."""
        return refreshed_at + timedelta(seconds=lifetime) if lifetime else None
