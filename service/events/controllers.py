"""``/api/events/``: staff read every event, users their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from service.events.schemas import EventRead
from service.events.services import EventService
from service.http import READ
from service.pagination import WindowDependency, list_route, paginated
from service.security.guards import is_staff_request
from service.security.principal import CurrentPrincipal
from service.text import NAME_PATTERN


async def provide_events(db_session: NamedDependency[AsyncSession]) -> AsyncIterator[EventService]:
    """Dependency: the event service on the request's session."""
    yield EventService(session=db_session)


class EventController(Controller):
    """Audit events, newest first."""

    path = "/api/events"
    tags = ["events"]
    dependencies = {"events": Provide(provide_events)}

    @list_route("EventsList", READ)
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        events: NamedDependency[EventService],
        principal: CurrentPrincipal,
        window: WindowDependency,
        event_type: Annotated[
            str | None, Parameter(max_length=64, pattern=NAME_PATTERN, description="Only events of this type.")
        ] = None,
        user: Annotated[UUID | None, Parameter(description="Staff: only events about this user.")] = None,
    ) -> Response[list[EventRead]]:
        """Events about the caller (staff: about anyone)."""
        if is_staff_request(principal):
            items, total, uuids = await events.listing(window, user_uuid=user, event_type=event_type)
        else:
            items, total, uuids = await events.listing(window, user_id=principal.user_id, event_type=event_type)
        body = [
            EventRead(
                uuid=e.uuid,
                event_type=e.event_type,
                message=e.message,
                user=uuids.get(e.user_id) if e.user_id is not None else None,
                created=e.created_at,
                context=e.context,
            )
            for e in items
        ]
        return paginated(request, body, total, window)
