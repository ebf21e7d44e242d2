"""Recording and reading audit events."""

from __future__ import annotations

import logging
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService

from service.events.models import Event

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
    PAT_NETWORK_ACL_UPDATED = "pat_network_acl_updated"
    PAT_USED_FROM_NEW_IP = "pat_used_from_new_ip"
    PAT_ACCESS_DENIED_FROM_IP = "pat_access_denied_from_ip"
    ROLE_GRANTED = "role_granted"
    ROLE_REVOKED = "role_revoked"
    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"


class EventRepository(SQLAlchemyAsyncRepository[Event]):
    """Data access for events."""

    model_type = Event


class EventService(SQLAlchemyAsyncRepositoryService[Event, EventRepository]):
    """Writes events in the caller's transaction and mirrors each as one structured log line."""

    repository_type = EventRepository

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
        logger.info("%s %s", event_type, message, extra={"event": event_type, "user_id": user_id, "context": context})
        return event
