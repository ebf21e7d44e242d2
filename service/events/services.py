"""Recording and reading audit events."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import select

from service.events.models import Event, WebhookDelivery
from service.users.models import User

if TYPE_CHECKING:
    from service.pagination import Window

logger = logging.getLogger("tokengate.events")


class EventType:
    """Names of the events the service records."""

    TOKEN_CREATED = "token_created"
    TOKEN_REGENERATED = "token_regenerated"
    TOKEN_DELETED = "token_deleted"
    LOGIN_SUCCEEDED = "auth_logged_in_with_username"
    LOGIN_FAILED = "auth_login_failed_with_username"
    LOGIN_THROTTLED = "auth_login_throttled"
    LOGIN_UNLOCKED = "auth_login_unlocked"
    PAT_CREATED = "pat_created"
    PAT_REVOKED = "pat_revoked"
    PAT_ROTATED = "pat_rotated"
    PAT_EXPIRED = "pat_expired"
    PAT_EXPIRING = "pat_expiring"
    PAT_NETWORK_ACL_UPDATED = "pat_network_acl_updated"
    PAT_USED_FROM_NEW_IP = "pat_used_from_new_ip"
    PAT_ACCESS_DENIED_FROM_IP = "pat_access_denied_from_ip"
    PAT_REUSE_DETECTED = "pat_reuse_detected"
    TOKEN_REPORTED_LEAKED = "token_reported_leaked"
    ROLE_GRANTED = "role_granted"
    ROLE_REVOKED = "role_revoked"
    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"


class EventRepository(SQLAlchemyAsyncRepository[Event]):
    """Data access for events."""

    model_type = Event


class EventService(SQLAlchemyAsyncRepositoryService[Event, EventRepository]):
    """Writes events in the caller's transaction and mirrors each as one structured log line.

    An event of a type in ``outbox`` also gets a webhook delivery row in the same transaction: it is delivered if
    and only if it is committed.
    """

    repository_type = EventRepository

    def __init__(self, session: Any, outbox: Collection[str] = (), **kwargs: Any) -> None:
        super().__init__(session=session, **kwargs)
        self.outbox = outbox

    async def record(
        self,
        event_type: str,
        message: str,
        *,
        user_id: int | None = None,
        actor_id: int | None = None,
        **context: Any,
    ) -> Event:
        """Store an event (``message`` is final text; ``context`` holds structured, non-secret details)."""
        event = await self.create(
            Event(event_type=event_type, message=message, user_id=user_id, actor_id=actor_id, context=context)
        )
        if event_type in self.outbox:
            self.repository.session.add(WebhookDelivery(event_id=event.id, next_attempt_at=datetime.now(UTC)))
        logger.info("%s %s", event_type, message, extra={"event": event_type, "user_id": user_id, "context": context})
        return event

    async def listing(
        self,
        window: Window,
        *,
        user_id: int | None = None,
        user_uuid: UUID | None = None,
        event_type: str | None = None,
    ) -> tuple[list[Event], int, dict[int, UUID]]:
        """A page of events, newest first, about one user (by id or UUID) or anyone; with the users' UUIDs."""
        filters: list[Any] = []
        if user_id is not None:
            filters.append(Event.user_id == user_id)
        if user_uuid is not None:
            filters.append(Event.user_id.in_(select(User.id).where(User.uuid == user_uuid)))
        if event_type is not None:
            filters.append(Event.event_type == event_type)
        items, total = await self.get_many_and_count(window.filter, *filters, order_by=Event.id.desc())
        user_ids = {event.user_id for event in items if event.user_id is not None}
        rows = await self.repository.session.execute(select(User.id, User.uuid).where(User.id.in_(user_ids)))
        return list(items), total, {row.id: row.uuid for row in rows}
