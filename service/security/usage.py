"""Token usage recorded in memory on the request path and written to the database in batches.

Nothing here awaits the database during a request: ``record`` only updates dictionaries. The app runs ``flush``
every ``usage_flush_seconds`` and once more at shutdown, so a clean stop loses nothing the database accepts; one item
it refuses is dropped (logged) rather than blocking the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth_tokens.models import AuthToken
from service.events.services import EventType
from service.pats.models import PersonalAccessToken

if TYPE_CHECKING:
    from service.runtime import Runtime
    from service.security.verifier import CachedCredential

EVENT_DEBOUNCE_SECONDS = 600.0

logger = logging.getLogger("tokengate.usage")


class UsageFlushError(Exception):
    """The database took none of the usage items: they are kept for the next flush."""


@dataclass(slots=True)
class PatUsage:
    """Uses of one PAT since the last flush."""

    count: int
    last_used_at: float
    """``time.time()`` of the last use."""
    last_used_ip: str | None
    entry: CachedCredential
    """The cache entry the last use came through: see ``repeat``."""


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An audit event raised on the request path, stored at the next flush."""

    event_type: str
    message: str
    user_id: int
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Write:
    """One item of a flush: how to write it, and how to put it back for the next flush."""

    what: str
    """For the log: what the item is (ids and counts, never an address or a secret)."""
    apply: Callable[[AsyncSession], Awaitable[None]]
    restore: Callable[[], None]


class UsageRecorder:
    """Collects PAT usage, legacy-token refreshes and usage events; flushes them in one transaction."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pats: dict[int, PatUsage] = {}
        self._legacy: dict[int, tuple[float, float | None]] = {}  # token id -> (refreshed at, lifetime)
        self._events: list[PendingEvent] = []
        self._debounce: dict[tuple[str, int, str], float] = {}

    def record(self, entry: CachedCredential, now: float, ip_text: str | None) -> None:
        """Note one successful use of a credential at ``now`` (``time.time()``) from the address ``ip_text``."""
        principal = entry.principal
        if not principal.is_pat:
            self._refresh_legacy(entry, now)
            return
        usage = self._pats.get(principal.credential_id)
        if usage is None:
            self._pats[principal.credential_id] = PatUsage(1, now, ip_text, entry)
        else:
            usage.count += 1
            usage.last_used_at, usage.last_used_ip, usage.entry = now, ip_text, entry
        if (
            ip_text
            and entry.last_used_ip
            and ip_text != entry.last_used_ip
            and self._due(EventType.PAT_USED_FROM_NEW_IP, entry, ip_text, now)
        ):
            self._event(
                EventType.PAT_USED_FROM_NEW_IP,
                f"Personal access token {entry.pat_name} for user {principal.username} was used from "
                f"new IP {ip_text} (previous: {entry.last_used_ip}).",
                entry,
                ip_text,
            )
        entry.last_used_ip = ip_text or entry.last_used_ip

    def repeat(self, entry: CachedCredential, now: float) -> bool:
        """Count one more PAT use like the last one recorded through ``entry`` (same client address).

        False when there is none since the last flush to add to: then the use must be recorded with ``record``.
        """
        usage = self._pats.get(entry.principal.credential_id)
        if usage is None or usage.entry is not entry:
            return False
        usage.count += 1
        usage.last_used_at = now
        return True

    def denied_from_ip(self, entry: CachedCredential, now: float, ip_text: str | None) -> None:
        """Note a request refused by a PAT's network ACL (one event per token and address per 10 minutes)."""
        ip_text = ip_text or "unknown"
        if self._due(EventType.PAT_ACCESS_DENIED_FROM_IP, entry, ip_text, now):
            self._event(
                EventType.PAT_ACCESS_DENIED_FROM_IP,
                f"Personal access token {entry.pat_name} for user {entry.principal.username} was "
                f"rejected: source address {ip_text} is outside the token network ACL.",
                entry,
                ip_text,
            )

    def _refresh_legacy(self, entry: CachedCredential, now: float) -> None:
        if now >= entry.refresh_due():
            entry.slide(now)
            self._legacy[entry.principal.credential_id] = (now, entry.lifetime)

    def _due(self, event_type: str, entry: CachedCredential, ip: str, now: float) -> bool:
        """Whether an event about this token and address is due (none in the last 10 minutes); if so, it is now."""
        key = (event_type, entry.principal.credential_id, ip)
        last = self._debounce.get(key)
        if last is not None and now - last < EVENT_DEBOUNCE_SECONDS:
            return False
        self._debounce[key] = now
        return True

    def _event(self, event_type: str, message: str, entry: CachedCredential, ip: str) -> None:
        context = {"pat_uuid": entry.pat_uuid, "pat_name": entry.pat_name, "source_ip": ip}
        self._events.append(PendingEvent(event_type, message, entry.principal.user_id, context))

    async def flush(self) -> None:
        """Write everything collected so far, in one transaction; if that fails, each item in its own.

        An item the database refuses while it accepts others can never be written: it is dropped with an error log,
        so it never holds back anyone else's usage. When nothing can be written the database is unreachable (or
        read-only, or full): everything is kept for the next flush and :class:`UsageFlushError` says so — an item
        that fails alone is retried until a flush with others shows it is the item at fault.
        """
        writes = self._take()
        if not writes:
            return
        try:
            await self._write(writes)
        except Exception:
            logger.warning("usage flush of %d items failed; writing them one by one", len(writes), exc_info=True)
            await self._write_one_by_one(writes)
        except BaseException:  # cancelled mid-write (shutdown of the periodic flush): the final flush retries
            for write in reversed(writes):
                write.restore()
            raise
        self._prune_debounce()

    async def flush_at_shutdown(self) -> None:
        """The last flush of a stopping worker: what cannot be written is reported as lost, never silently."""
        try:
            await self.flush()
        except UsageFlushError as exc:
            logger.error("usage flush at shutdown failed, lost: %s", exc)

    def _take(self) -> list[_Write]:
        pats, self._pats = self._pats, {}
        legacy, self._legacy = self._legacy, {}
        events, self._events = self._events, []
        writes = [self._pat_write(pat_id, usage) for pat_id, usage in pats.items()]
        writes += [self._legacy_write(token_id, refresh) for token_id, refresh in legacy.items()]
        return writes + [self._event_write(event) for event in events]

    async def _write(self, writes: list[_Write]) -> None:
        async with self.runtime.session() as session:
            for write in writes:
                await write.apply(session)

    async def _write_one_by_one(self, writes: list[_Write]) -> None:
        failed: list[_Write] = []
        for write in writes:
            try:
                await self._write([write])
            except Exception:
                logger.warning("usage item not written: %s", write.what, exc_info=True)
                failed.append(write)
        if not failed:
            return
        if len(failed) < len(writes):  # the database takes writes: these it never will
            for write in failed:
                logger.error("usage item refused by the database, dropped: %s", write.what)
            return
        for write in reversed(failed):
            write.restore()
        raise UsageFlushError(f"{len(failed)} items not written ({'; '.join(w.what for w in failed[:5])})")

    def _pat_write(self, pat_id: int, usage: PatUsage) -> _Write:
        async def apply(session: AsyncSession) -> None:
            await session.execute(
                update(PersonalAccessToken)
                .where(PersonalAccessToken.id == pat_id)
                .values(
                    use_count=PersonalAccessToken.use_count + usage.count,
                    last_used_at=datetime.fromtimestamp(usage.last_used_at, UTC),
                    last_used_ip=usage.last_used_ip,
                )
            )

        def restore() -> None:
            newer = self._pats.get(pat_id)
            if newer is None:
                self._pats[pat_id] = usage
            else:
                newer.count += usage.count

        return _Write(f"{usage.count} uses of PAT {pat_id}", apply, restore)

    def _legacy_write(self, token_id: int, refresh: tuple[float, float | None]) -> _Write:
        refreshed_ts, lifetime = refresh

        async def apply(session: AsyncSession) -> None:
            refreshed_at = datetime.fromtimestamp(refreshed_ts, UTC)
            await session.execute(
                update(AuthToken)
                .where(AuthToken.id == token_id, AuthToken.refreshed_at < refreshed_at)
                .values(
                    refreshed_at=refreshed_at,
                    expires_at=refreshed_at + timedelta(seconds=lifetime) if lifetime else None,
                    updated_at=AuthToken.updated_at,  # Get All Auth Tokens: updated_at moves only on regeneration
                )
            )

        def restore() -> None:
            self._legacy.setdefault(token_id, refresh)

        return _Write(f"refresh of legacy token {token_id}", apply, restore)

    def _event_write(self, event: PendingEvent) -> _Write:
        async def apply(session: AsyncSession) -> None:
            await self.runtime.event_recorder(session).record(
                event.event_type, event.message, user_id=event.user_id, **event.context
            )

        return _Write(f"{event.event_type} event of user {event.user_id}", apply, lambda: self._events.insert(0, event))

    def _prune_debounce(self) -> None:
        cutoff = time.time() - EVENT_DEBOUNCE_SECONDS
        self._debounce = {key: at for key, at in self._debounce.items() if at >= cutoff}
