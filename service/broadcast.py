"""Changes announced to every worker and instance at once, over PostgreSQL LISTEN/NOTIFY.

Without it a change made by one worker is still honoured by all within a second: the users, tokens and policy facts
changed since the last look are polled every ``sync_interval_seconds``. On PostgreSQL the worker that made the
change also NOTIFYs the others, which act on it when it arrives (milliseconds): they drop the credential, poll
the facts at once, or reload the policy after a worker reloaded it on SIGHUP. Polling stays as the fallback for a
notification lost with a connection; on SQLite (one host, no NOTIFY) it is the only path.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from service.metrics import notification_arrived

logger = logging.getLogger("tokengate.broadcast")

CHANNEL = "tokengate"
TOKEN, USER, FACTS, POLICY = "token", "user", "facts", "policy"


class CredentialCache(Protocol):
    """The cache another worker's token and user changes are applied to (``TokenVerifier``)."""

    def forget_token(self, token_hash: str) -> None:
        """Drop the cached credential with this token hash."""

    def forget_user(self, user_id: int) -> None:
        """Drop every cached credential of this user."""


class Broadcast:
    """Sends this worker's changes and applies the other workers' ones to this worker's caches.

    ``reload_policy`` reloads this worker's policy directory when another worker reloaded its own.
    """

    def __init__(self, engine: AsyncEngine, credentials: CredentialCache, reload_policy: Callable[[], object]) -> None:
        self._engine = engine
        self._credentials = credentials
        self._reload_policy = reload_policy
        self.sender = secrets.token_hex(8)  # this worker: its own notifications come back and are skipped
        self.on_facts: Callable[[], None] = lambda: None
        """Called when another worker changed entities or role assignments (the app wakes its fact watcher)."""
        self._listener: asyncpg.Connection | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        """Whether the database can carry notifications (PostgreSQL)."""
        return self._engine.dialect.name == "postgresql"

    async def announce(self, kind: str, subject: str = "") -> None:
        """Tell the other workers that a ``kind`` change (``token`` hash, ``user`` id, ``facts``) was committed.

        A failure is logged, not raised: the change is committed, and the others see it by polling.
        """
        if not self.enabled:
            return
        try:
            async with self._engine.connect() as connection:
                await connection.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": CHANNEL, "payload": f"{self.sender}@{time.time():.6f} {kind} {subject}"},
                )
                await connection.commit()
        except Exception:
            logger.warning("could not announce a %s change; other workers will see it by polling", kind, exc_info=True)

    async def listen(self) -> None:
        """Open the listening connection, or open it again if it was lost (the app runs this periodically).

        A failure (the database away, a pooler that cannot LISTEN) is logged once, not raised: polling still works.
        """
        if not self.enabled or (self._listener is not None and not self._listener.is_closed()):
            return
        url = self._engine.url.set(drivername="postgresql")
        listener = None
        try:
            listener = await asyncpg.connect(url.render_as_string(hide_password=False))
            await listener.add_listener(CHANNEL, self._received)
        except Exception:
            if listener is not None:
                listener.terminate()
            if not self._failing:
                logger.warning("cannot LISTEN for other workers' changes; relying on polling", exc_info=True)
            self._failing = True
            return
        self._listener, self._failing = listener, False

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    def _received(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, rest = payload.partition(" ")
        kind, _, subject = rest.partition(" ")
        sender, _, sent_at = origin.partition("@")
        if sender == self.sender:
            return
        with contextlib.suppress(ValueError):
            notification_arrived(float(sent_at))
        if kind == TOKEN:
            self._credentials.forget_token(subject)
        elif kind == USER and subject.isdigit():
            self._credentials.forget_user(int(subject))
        elif kind == FACTS:
            self.on_facts()
        elif kind == POLICY:  # another worker reloaded its rules: read this worker's directory again
            self._reload_policy()
