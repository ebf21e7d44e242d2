"""My activity: the signed-in person's audit events, newest first."""

from __future__ import annotations

import math
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Template

from service.events.controllers import provide_events
from service.events.services import EventService
from service.pagination import Window
from service.ui.render import page
from service.ui.session import Viewer

PAGE_SIZE = 25


def window_of(page_number: int, size: int = PAGE_SIZE) -> Window:
    """The slice shown as page ``page_number`` of a page list."""
    return Window(limit=size, offset=(page_number - 1) * size, by_page=True)


def page_count(total: int, size: int = PAGE_SIZE) -> int:
    """How many pages ``total`` rows fill (at least one)."""
    return max(1, math.ceil(total / size))


PageNumber = Annotated[int, QueryParameter(name="page", ge=1, le=10**6)]


class ActivityPages(Controller):
    """``/ui/activity``."""

    path = "/activity"
    dependencies = {"events": Provide(provide_events)}

    @get("/")
    async def activity(
        self, events: NamedDependency[EventService], viewer: Viewer, page_number: PageNumber = 1
    ) -> Template:
        """Events about me, newest first, a page at a time."""
        items, total, _ = await events.listing(window_of(page_number), user_id=viewer.user_id)
        return page(
            "activity.html", viewer, events=items, page_number=page_number, pages=page_count(total), total=total
        )
