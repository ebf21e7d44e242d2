"""Password-login throttling per username and per client address, shared by every worker through the database.

An attempt is counted *before* its password is checked, in one atomic upsert per key (``INSERT … ON CONFLICT DO
UPDATE … RETURNING`` on SQLite and PostgreSQL alike), and committed before argon2 runs: however many guesses arrive
at once, on however many workers, at most the limit of them are evaluated per window. A success clears the
username's count and gives the address back its attempt (an office behind one NAT logs in all day); a failure
stays counted. Failed and refused attempts are audited (a refusal once per key and window, so a flood of refused
guesses cannot flood the audit log).

The database rather than Redis: it is the one store every deployment already shares, so the limit holds without
another moving part; one short write transaction per attempt is small beside the argon2 verification it guards.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import LoginSettings
from service.errors import Throttled
from service.events.services import EventType
from service.security.collaborators import EventRecorder, SessionFactory
from service.security.models import LoginAttempts
from service.text import printable


def username_key(username: str) -> str:
    """The throttling key of a username: case-insensitive (``Alice`` and ``alice`` share one count) and of fixed size.

    A digest, because lower-casing can lengthen a name (``"İ".lower()`` is two characters) past any column, and a
    username field is where people type their password by mistake.
    """
    return "user:" + hashlib.sha256(username.lower().encode()).hexdigest()


def address_key(ip: str) -> str:
    """The throttling key of a client address: IPv6 by its /64, which one subscriber holds whole (SLAAC, RFC 6177).

    Otherwise a single attacker would have 2**64 addresses, each with the full per-address allowance.
    """
    if ":" in ip:
        return f"ip:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"ip:{ip}"


@dataclass(frozen=True, slots=True)
class _Refusal:
    retry_after: int
    first: bool
    """The first refused attempt of the window: the one that is audited."""
    limit: str


class LoginThrottle:
    """Fixed windows of ``login.window_seconds``: past a limit, every attempt gets 429 until its window ends."""

    def __init__(self, login: LoginSettings, session: SessionFactory, event_recorder: EventRecorder) -> None:
        self._session = session
        self._event_recorder = event_recorder
        self.window = login.window_seconds
        self.limits = {"address": login.max_failures_per_ip, "username": login.max_failures_per_username}

    async def admit(self, username: str, ip: str) -> None:
        """Count one attempt for ``username`` from ``ip``, before its password is checked.

        Raises:
            Throttled: the address or the username is past its limit in this window (the attempt is not evaluated).
        """
        now = time.time()
        refusal = None
        async with self._session() as session:
            # the address first: one past its limit stops there, creating no rows for the usernames it tries
            for limit, key in (("address", address_key(ip)), ("username", username_key(username))):
                attempts, started = await self._count(session, key, now)
                if attempts > self.limits[limit]:
                    retry_after = max(1, math.ceil(started + self.window - now))
                    refusal = _Refusal(retry_after, attempts == self.limits[limit] + 1, limit)
                    break
            if refusal is not None and refusal.first:
                shown = printable(username)
                await self._event_recorder(session).record(
                    EventType.LOGIN_THROTTLED,
                    f"Password login for user {shown} was throttled: too many attempts for this {refusal.limit}.",
                    username=shown,
                    source_ip=ip,
                    limit=refusal.limit,
                    retry_after=refusal.retry_after,
                )
        if refusal is not None:
            raise Throttled(refusal.retry_after)

    async def _count(self, session: AsyncSession, key: str, now: float) -> tuple[int, float]:
        """Add one attempt to ``key``'s window (a new window if the last one is over); its count and start."""
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        over = LoginAttempts.window_started <= now - self.window  # the stored row's window (SET sees old values)
        statement = (
            insert(LoginAttempts)
            .values(key=key, window_started=now, attempts=1)
            .on_conflict_do_update(
                index_elements=[LoginAttempts.key],
                set_={
                    "attempts": case((over, 1), else_=LoginAttempts.attempts + 1),
                    "window_started": case((over, now), else_=LoginAttempts.window_started),
                },
            )
            .returning(LoginAttempts.attempts, LoginAttempts.window_started)
        )
        attempts, started = (await session.execute(statement)).one()
        return int(attempts), float(started)

    async def failed(self, username: str, ip: str, user_id: int | None) -> None:
        """Audit a failed attempt (already counted by :meth:`admit`); a username that is no name is shown escaped."""
        shown = printable(username)
        async with self._session() as session:
            await self._event_recorder(session).record(
                EventType.LOGIN_FAILED,
                f"User {shown} failed to authenticate with username and password.",
                user_id=user_id,
                username=shown,
                source_ip=ip,
            )

    async def succeeded(self, username: str, ip: str) -> None:
        """Clear the username's count and give the address back the attempt :meth:`admit` counted."""
        async with self._session() as session:  # rows in admit's order (address first): no deadlock
            await session.execute(
                update(LoginAttempts)
                .where(LoginAttempts.key == address_key(ip), LoginAttempts.attempts > 0)
                .values(attempts=LoginAttempts.attempts - 1)
            )
            await session.execute(delete(LoginAttempts).where(LoginAttempts.key == username_key(username)))

    async def unlock(self, username: str) -> bool:
        """Clear ``username``'s count (``tokengate users unlock``); whether there was one. Audited."""
        async with self._session() as session:
            deleted = await session.execute(
                delete(LoginAttempts).where(LoginAttempts.key == username_key(username)).returning(LoginAttempts.key)
            )
            found = deleted.first() is not None
            if found:
                await self._event_recorder(session).record(
                    EventType.LOGIN_UNLOCKED,
                    f"Password login for user {printable(username)} was unlocked by an operator.",
                    username=printable(username),
                )
        return found

    async def prune(self) -> int:
        """Delete the counts whose window is over (they would start afresh anyway); how many."""
        # rows an attempt holds are skipped (PostgreSQL; SQLite has no row locks): never a deadlock with admit()
        stale = (
            select(LoginAttempts.key)
            .where(LoginAttempts.window_started <= time.time() - self.window)
            .with_for_update(skip_locked=True)
        )
        async with self._session() as session:
            deleted = await session.execute(
                delete(LoginAttempts).where(LoginAttempts.key.in_(stale)).returning(LoginAttempts.key)
            )
            return len(deleted.all())
