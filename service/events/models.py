"""Audit events."""

from __future__ import annotations

import uuid as uuid_lib
from datetime import datetime
from typing import Any

from advanced_alchemy.base import BigIntAuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column


class Event(BigIntAuditBase):
    """Something security-relevant that happened: who it concerns, what, and structured context (never secrets)."""

    __tablename__ = "audit_event"

    uuid: Mapped[uuid_lib.UUID] = mapped_column(Uuid, unique=True, default=uuid_lib.uuid4)
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    message: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("user_account.id", ondelete="SET NULL"), index=True, nullable=True
    )
    actor_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True
    )
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WebhookDelivery(BigIntAuditBase):
    """The outbox: one row per event to deliver to the webhook, written in the event's own transaction.

    A worker claims a due row by setting ``lease_until`` (so no other worker sends it meanwhile), then marks it
    ``delivered_at`` or reschedules it at ``next_attempt_at``. A lease that runs out (a worker stopped mid-send) makes
    the row due again, so a restart loses nothing; the receiver drops repeats by the event's uuid.
    """

    __tablename__ = "webhook_delivery"

    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("audit_event.id", ondelete="CASCADE"), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), nullable=True, default=None)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True, default=None)
