"""Keeps this worker's cached verifications equal to the database when no notification reaches it.

:class:`CredentialWatcher` polls, every ``sync_interval_seconds``, the users, PATs and legacy tokens whose indexed
``updated_at`` moved since its last look, and drops the cached verifications built from them. On PostgreSQL the
worker that made a change also NOTIFYs the others (``service.broadcast``), which drop them at once; the poll is what
honours a change on SQLite, across a lost connection or behind a pooler that cannot LISTEN.

A poll that succeeds confirms the cache for two intervals from its start (``TokenVerifier.confirm``): a change is
then honoured within that time even when polls stop succeeding, because unconfirmed entries are not trusted.

Use does not move ``updated_at`` (usage flushes keep it), and deleting a legacy token marks its user changed, so
every change verification depends on is seen here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.auth_tokens.models import AuthToken
from service.pats.models import PersonalAccessToken
from service.security.verifier import TokenVerifier
from service.users.models import User

_PATS, _TOKENS, _USERS = PersonalAccessToken.__table__.c, AuthToken.__table__.c, User.__table__.c
_PAT_CHANGES = select(_PATS.id, _PATS.token_hash, _PATS.updated_at)
_TOKEN_CHANGES = select(_TOKENS.id, _TOKENS.user_id, _TOKENS.updated_at)
_USER_CHANGES = select(_USERS.id, _USERS.updated_at)


class CredentialWatcher:
    """Polls for users and tokens changed by other workers and drops their cached verifications here."""

    # Rows are re-read this far back, so a writer whose clock or commit lags a little is still seen.
    OVERLAP = timedelta(seconds=5)

    def __init__(self, engine: AsyncEngine, verifier: TokenVerifier, interval_seconds: float) -> None:
        self._engine = engine
        self._verifier = verifier
        self._interval = interval_seconds
        self.since = datetime.now(UTC) - self.OVERLAP
        self._seen: dict[tuple[str, int], datetime] = {}
        """The ``updated_at`` of each row already acted on within the overlap: a re-read of it changes nothing."""

    @property
    def trusted_for(self) -> float:
        """How long one successful poll confirms the cache."""
        return 2 * self._interval

    async def poll(self) -> None:
        """Drop the cached verifications of every user and token changed since the last poll, then confirm."""
        started_at, started = datetime.now(UTC), time.time()
        since = self.since
        async with self._engine.connect() as connection:
            pats = (await connection.execute(_PAT_CHANGES.where(_PATS.updated_at >= since))).all()
            tokens = (await connection.execute(_TOKEN_CHANGES.where(_TOKENS.updated_at >= since))).all()
            users = (await connection.execute(_USER_CHANGES.where(_USERS.updated_at >= since))).all()
        verifier = self._verifier
        for pat_id, token_hash, updated_at in pats:
            if self._is_new("pat", pat_id, updated_at):
                verifier.forget_token(token_hash)
        # a legacy row changes its hash on regeneration, so the cached (old) one is found through its user
        for token_id, user_id, updated_at in tokens:
            if self._is_new("token", token_id, updated_at):
                verifier.forget_user(user_id)
        for user_id, updated_at in users:
            if self._is_new("user", user_id, updated_at):
                verifier.forget_user(user_id)
        self.since = started_at - self.OVERLAP
        self._seen = {key: at for key, at in self._seen.items() if at >= self.since}
        verifier.confirm(started, self.trusted_for)

    def _is_new(self, table: str, row_id: int, updated_at: datetime) -> bool:
        key = (table, row_id)
        if self._seen.get(key) == updated_at:
            return False
        self._seen[key] = updated_at
        return True
