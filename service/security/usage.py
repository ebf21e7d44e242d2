"""Token usage recorded in memory on the request path and written to the database in batches.

Nothing here awaits the database during a request: ``record`` only updates dictionaries. The app runs ``flush_due``
every ``usage_flush_seconds``: it writes the audit events and legacy refreshes collected, and the uses of each PAT
whose first unwritten use is ``usage_write_seconds`` old. A PAT in steady use is so written about once per
``usage_write_seconds`` whatever its request rate, and a worker serving thousands of tokens writes a few rows per
token a minute instead of one per token and flush: each row is an update the database must make. ``flush`` writes
everything, once more at shutdown, so a clean stop loses nothing the database accepts; one item it refuses is
dropped (logged) rather than blocking the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from service.auth_tokens.repositories import AuthTokenRepository
from service.events.services import EventType
from service.pats.repositories import PatRepository, PatUses
from service.security.collaborators import EventRecorder, SessionFactory
from service.security.verifier import CachedCredential, LegacyCredential

EVENT_DEBOUNCE_SECONDS = 600.0
logger = logging.getLogger("tokengate.usage")
_Batch = tuple[dict[int, "PatUsage"], dict[int, tuple[float, float | None]], list["PendingEvent"]]
"""PAT uses by token id, legacy refreshes by token id (refreshed at, lifetime), pending events."""


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
    """The cache entry the last use came through: see ``record_again``."""
    since: float
    """``time.time()`` of the first use not yet written: see ``flush_due``."""


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An audit event about a PAT raised on the request path, stored at the next flush.

    Cached credentials do not hold the PAT's name and uuid (they would double an entry's size): the flush reads them.
    """

    event_type: str
    describe: Callable[[str], str]
    """The message, given the token's name."""
    user_id: int
    pat_id: int
    source_ip: str


class UsageRecorder:
    """Collects PAT usage, legacy-token refreshes and usage events; flushes them in one transaction.

    ``session`` opens the flush's transaction; ``event_recorder`` gives the audit log on it; ``write_after`` is how
    long a PAT's uses wait before ``flush_due`` writes them (0: at once).
    """

    def __init__(self, session: SessionFactory, event_recorder: EventRecorder, write_after: float = 0.0) -> None:
        self._session = session
        self._event_recorder = event_recorder
        self._write_after = write_after
        self._pats: dict[int, PatUsage] = {}
        self._legacy: dict[int, tuple[float, float | None]] = {}  # token id -> (refreshed at, lifetime)
        self._events: list[PendingEvent] = []
        self._debounce: dict[tuple[str, int, str], float] = {}

    def record(self, entry: CachedCredential, now: float, ip_text: str | None) -> None:
        """Note one successful use of a credential at ``now`` (``time.time()``) from the address ``ip_text``."""
        if isinstance(entry, LegacyCredential):
            self._refresh_legacy(entry, now)
            return
        principal = entry.principal
        usage = self._pats.get(entry.credential_id)
        if usage is None:
            self._pats[entry.credential_id] = PatUsage(1, now, ip_text, entry, now)
        else:
            usage.count += 1
            usage.last_used_at, usage.last_used_ip, usage.entry = now, ip_text, entry
        if (
            ip_text
            and entry.last_used_ip
            and ip_text != entry.last_used_ip
            and self._due(EventType.PAT_USED_FROM_NEW_IP, entry, ip_text, now)
        ):
            previous = entry.last_used_ip
            self._event(
                EventType.PAT_USED_FROM_NEW_IP,
                lambda name: (
                    f"Personal access token {name} for user {principal.username} was used from "
                    f"new IP {ip_text} (previous: {previous})."
                ),
                entry,
                ip_text,
            )
        entry.last_used_ip = ip_text or entry.last_used_ip

    def record_again(self, entry: CachedCredential, now: float) -> bool:
        """Count one more PAT use like the last one recorded through ``entry`` (from the same client address).

        The address is the one ``record`` last noted on the entry, so no "used from new IP" event can be due. False
        when uses since the last flush came through another entry of the token (a lookup made since): then the use
        must be recorded with ``record``, which compares the address with the newer entry's.
        """
        usage = self._pats.get(entry.credential_id)
        if usage is None:  # the first use since its last write
            self._pats[entry.credential_id] = PatUsage(1, now, entry.last_used_ip, entry, now)
            return True
        if usage.entry is not entry:
            return False
        usage.count += 1
        usage.last_used_at = now
        return True

    def denied_from_ip(self, entry: CachedCredential, now: float, ip_text: str | None) -> None:
        """Note a request refused by a PAT's network ACL (one event per token and address per 10 minutes)."""
        source = ip_text or "unknown"
        if self._due(EventType.PAT_ACCESS_DENIED_FROM_IP, entry, source, now):
            username = entry.principal.username
            self._event(
                EventType.PAT_ACCESS_DENIED_FROM_IP,
                lambda name: (
                    f"Personal access token {name} for user {username} was "
                    f"rejected: source address {source} is outside the token network ACL."
                ),
                entry,
                source,
            )

    def _refresh_legacy(self, entry: LegacyCredential, now: float) -> None:
        if now >= entry.refresh_due():
            entry.slide(now)
            self._legacy[entry.credential_id] = (now, entry.lifetime)

    def _due(self, event_type: str, entry: CachedCredential, ip: str, now: float) -> bool:
        """Whether an event about this token and address is due (none in the last 10 minutes); if so, it is now."""
        key = (event_type, entry.credential_id, ip)
        last = self._debounce.get(key)
        if last is not None and now - last < EVENT_DEBOUNCE_SECONDS:
            return False
        self._debounce[key] = now
        return True

    def _event(self, event_type: str, describe: Callable[[str], str], entry: CachedCredential, ip: str) -> None:
        self._events.append(PendingEvent(event_type, describe, entry.principal.user_id, entry.credential_id, ip))

    async def flush(self) -> None:
        """Write everything collected so far, in one transaction; if that fails, each item in its own.

        An item the database refuses while it accepts others can never be written: it is dropped with an error log,
        so it never holds back anyone else's usage. When nothing can be written the database is unreachable (or
        read-only, or full): everything is kept for the next flush and :class:`UsageFlushError` says so.
        """
        pats, self._pats = self._pats, {}
        await self._flush(pats)

    async def flush_due(self, now: float | None = None) -> None:
        """``flush``, but of the PATs' uses only those of tokens whose first unwritten use is ``write_after`` old.

        Audit events and legacy refreshes are all written: they wait for no one.
        """
        cutoff = (time.time() if now is None else now) - self._write_after
        pats = self._pats
        due = {pat_id: usage for pat_id, usage in pats.items() if usage.since <= cutoff}
        for pat_id in due:
            del pats[pat_id]
        await self._flush(due)

    async def _flush(self, pats: dict[int, PatUsage]) -> None:
        legacy, self._legacy = self._legacy, {}
        events, self._events = self._events, []
        if not (pats or legacy or events):
            return
        try:
            await self._write(pats, legacy, events)
        except Exception:
            count = len(pats) + len(legacy) + len(events)
            logger.warning("usage flush of %d items failed; writing them one by one", count, exc_info=True)
            await self._write_one_by_one(pats, legacy, events)
        except BaseException:  # cancelled mid-write (shutdown of the periodic flush): the final flush retries
            self._restore(pats, legacy, events)
            raise
        self._prune_debounce()

    async def flush_at_shutdown(self) -> None:
        """The last flush of a stopping worker: what cannot be written is reported as lost, never silently."""
        try:
            await self.flush()
        except UsageFlushError as exc:
            logger.error("usage flush at shutdown failed, lost: %s", exc)

    async def _write_one_by_one(
        self, pats: dict[int, PatUsage], legacy: dict[int, tuple[float, float | None]], events: list[PendingEvent]
    ) -> None:
        items: list[_Batch] = [({pat_id: usage}, {}, []) for pat_id, usage in pats.items()]
        items += [({}, {token_id: refresh}, []) for token_id, refresh in legacy.items()]
        items += [({}, {}, [event]) for event in events]
        failed: list[_Batch] = []
        for item in items:
            try:
                await self._write(*item)
            except Exception:
                logger.warning("usage item not written: %s", _describe(item), exc_info=True)
                failed.append(item)
        if not failed:
            return
        if len(failed) < len(items):  # the database takes writes: these it never will
            for item in failed:
                logger.error("usage item refused by the database, dropped: %s", _describe(item))
            return
        for item in reversed(failed):
            self._restore(*item)
        raise UsageFlushError(f"{len(failed)} items not written ({'; '.join(_describe(i) for i in failed[:5])})")

    def _restore(
        self, pats: dict[int, PatUsage], legacy: dict[int, tuple[float, float | None]], events: list[PendingEvent]
    ) -> None:
        for pat_id, usage in pats.items():
            newer = self._pats.get(pat_id)
            if newer is None:
                self._pats[pat_id] = usage
            else:
                newer.count += usage.count
                newer.since = min(newer.since, usage.since)
        for token_id, refresh in legacy.items():
            self._legacy.setdefault(token_id, refresh)
        self._events[:0] = events

    async def _write(
        self, pats: dict[int, PatUsage], legacy: dict[int, tuple[float, float | None]], events: list[PendingEvent]
    ) -> None:
        async with self._session() as session:
            pat_rows = PatRepository(session=session)
            # one statement executed for many rows: thousands of tokens used between flushes are common
            await pat_rows.record_uses(
                PatUses(pat_id, usage.count, datetime.fromtimestamp(usage.last_used_at, UTC), usage.last_used_ip)
                for pat_id, usage in pats.items()
            )
            legacy_rows = AuthTokenRepository(session=session)
            for token_id, (refreshed_ts, lifetime) in legacy.items():
                await legacy_rows.record_refresh(token_id, datetime.fromtimestamp(refreshed_ts, UTC), lifetime)
            recorder = self._event_recorder(session)
            names = await pat_rows.names({event.pat_id for event in events})
            for event in events:
                pat_uuid, pat_name = names.get(event.pat_id, ("", ""))
                await recorder.record(
                    event.event_type,
                    event.describe(pat_name),
                    user_id=event.user_id,
                    pat_uuid=pat_uuid,
                    pat_name=pat_name,
                    source_ip=event.source_ip,
                )

    def _prune_debounce(self) -> None:
        cutoff = time.time() - EVENT_DEBOUNCE_SECONDS
        self._debounce = {key: at for key, at in self._debounce.items() if at >= cutoff}


def _describe(item: _Batch) -> str:
    """For the log: what one flush item is (ids and counts, never an address or a secret)."""
    pats, legacy, events = item
    if pats:
        [(pat_id, usage)] = pats.items()
        return f"{usage.count} uses of PAT {pat_id}"
    if legacy:
        return f"refresh of legacy token {next(iter(legacy))}"
    return f"{events[0].event_type} event of user {events[0].user_id}"
