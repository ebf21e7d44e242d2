"""The legacy (Waldur/DRF-style) auth token: one per user."""

from __future__ import annotations

from datetime import datetime

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String
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
