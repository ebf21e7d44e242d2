"""Delivering audit events to the configured webhook from the outbox (``webhook_delivery``).

Each delivery is a ``POST`` of the event as JSON with the headers ``X-Tokengate-Event-Id`` (the event's uuid, also in
the body, so a receiver can drop repeats), ``X-Tokengate-Delivery-Attempt`` and ``X-Tokengate-Signature:
sha256=<hex>``, the HMAC-SHA256 of the body under ``webhook.secret``. A 2xx answer ends it; anything else, or no
answer, is retried after ``retry_base_seconds``, doubling up to ``retry_max_seconds``, for ``max_attempts`` attempts.
Rows are claimed with a lease, so concurrent workers never send one event at the same time, and a worker that stops
mid-send leaves a row that becomes due again when its lease runs out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
import msgspec
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.events.models import Event, WebhookDelivery
from service.users.models import User

if TYPE_CHECKING:
    from service.config import WebhookSettings
    from service.runtime import Runtime

logger = logging.getLogger("tokengate.webhook")

SIGNATURE_HEADER = "X-Tokengate-Signature"
EVENT_ID_HEADER = "X-Tokengate-Event-Id"
ATTEMPT_HEADER = "X-Tokengate-Delivery-Attempt"
BATCH = 50


class WebhookEvent(msgspec.Struct, kw_only=True):
    """The JSON body of a delivery."""

    id: UUID
    event_type: str
    message: str
    user: UUID | None
    created: datetime
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this worker holds the lease of."""

    delivery_id: int
    attempt: int
    body: bytes
    event_id: UUID


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(settings: WebhookSettings, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    return float(min(settings.retry_base_seconds * 2 ** (attempt - 1), settings.retry_max_seconds))


async def claim_due(session: AsyncSession, settings: WebhookSettings, now: datetime) -> list[Claimed]:
    """Lease up to ``BATCH`` due deliveries (counting the attempt) and build their bodies."""
    free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now)
    pending = [WebhookDelivery.delivered_at.is_(None), WebhookDelivery.attempts < settings.max_attempts, free]
    due = (
        select(WebhookDelivery.id)
        .where(*pending, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.id)
        .limit(BATCH)
    )
    lease = now + timedelta(seconds=settings.timeout_seconds * 2 + 5)
    claimed = (
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due), *pending)  # re-checked on the locked row: one worker wins
            .values(lease_until=lease, attempts=WebhookDelivery.attempts + 1)
            .returning(WebhookDelivery.id, WebhookDelivery.event_id, WebhookDelivery.attempts)
        )
    ).all()
    if not claimed:
        return []
    events = {
        event.id: (event, user_uuid)
        for event, user_uuid in await session.execute(
            select(Event, User.uuid)
            .outerjoin(User, User.id == Event.user_id)
            .where(Event.id.in_([event_id for _, event_id, _ in claimed]))
        )
    }
    out = []
    for delivery_id, event_id, attempt in claimed:
        event, user_uuid = events[event_id]
        body = msgspec.json.encode(
            WebhookEvent(
                id=event.uuid,
                event_type=event.event_type,
                message=event.message,
                user=user_uuid,
                created=event.created_at,
                context=event.context,
            )
        )
        out.append(Claimed(delivery_id, attempt, body, event.uuid))
    return out


async def settle(
    session: AsyncSession, settings: WebhookSettings, claimed: Claimed, error: str | None, now: datetime
) -> None:
    """Mark a delivery done, or schedule its next attempt after ``error``; releases the lease."""
    values: dict[str, Any] = {"lease_until": None, "last_error": error}
    if error is None:
        values["delivered_at"] = now
    else:
        values["next_attempt_at"] = now + timedelta(seconds=retry_delay(settings, claimed.attempt))
        if claimed.attempt >= settings.max_attempts:
            logger.warning(
                "webhook: giving up event %s after %s attempts: %s", claimed.event_id, claimed.attempt, error
            )
    await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == claimed.delivery_id).values(**values))


class WebhookSender:
    """The delivery loop's work: send what is due, one worker per delivery at a time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.webhook

    async def deliver_due(self) -> int:
        """Send every due delivery once; returns how many the receiver accepted."""
        async with self.runtime.session() as session:  # the lease is committed before the receiver is waited for
            claimed = await claim_due(session, self.settings, datetime.now(UTC))
        if not claimed:
            return 0
        accepted = 0
        async with httpx.AsyncClient(timeout=self.settings.timeout_seconds) as client:
            for delivery in claimed:
                error = await self._post(client, delivery)
                async with self.runtime.session() as session:
                    await settle(session, self.settings, delivery, error, datetime.now(UTC))
                accepted += error is None
        return accepted

    async def _post(self, client: httpx.AsyncClient, delivery: Claimed) -> str | None:
        """One attempt; None when the receiver accepted it, else what went wrong."""
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: str(delivery.event_id),
            ATTEMPT_HEADER: str(delivery.attempt),
            SIGNATURE_HEADER: sign(self.settings.secret, delivery.body),
        }
        try:
            response = await client.post(self.settings.url, content=delivery.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        return None if response.is_success else f"HTTP {response.status_code}"
