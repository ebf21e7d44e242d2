"""What the security parts are given by the runtime that builds them, named once for all of them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession

from service.events.services import EventService

SessionFactory: TypeAlias = Callable[[], AbstractAsyncContextManager[AsyncSession]]
"""Opens a session for work outside request handlers that commits when its block ends without an exception."""

EventRecorder: TypeAlias = Callable[[AsyncSession], EventService]
"""An event service on the given session that queues the configured event types for the webhook."""
