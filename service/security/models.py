"""Tables of the security domain."""

from __future__ import annotations

from advanced_alchemy.base import DefaultBase
from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column


class LoginAttempts(DefaultBase):
    """Password-login attempts counted in the current window of one throttling key: a username or an address.

    Kept in the database so that every worker and instance counts against the same limit.
    """

    __tablename__ = "login_attempts"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    """``user:<SHA-256 of the lower-cased username>`` or ``ip:<canonical IPv4 address, or IPv6 /64>``."""
    window_started: Mapped[float] = mapped_column(Float, index=True)
    """``time.time()`` of the window's first attempt (seconds: compared in SQL the same way on every backend)."""
    attempts: Mapped[int] = mapped_column(Integer)
