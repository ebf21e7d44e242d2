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

from sqlalchemy import BigInteger, BindParameter, String, bindparam, cast, literal_column, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncEngine

from service.auth_tokens.models import AuthToken
from service.db import reader
from service.pats.models import PersonalAccessToken
from service.security.verifier import TokenVerifier
from service.users.models import User

_PATS, _TOKENS, _USERS = PersonalAccessToken.__table__.c, AuthToken.__table__.c, User.__table__.c
_SINCE: BindParameter[datetime] = bindparam("since")
_NO_HASH, _NO_USER = cast(null(), String), cast(null(), BigInteger)
CHANGES = union_all(
    select(literal_column("'pat'").label("kind"), _PATS.id, _PATS.token_hash, _NO_USER, _PATS.updated_at).where(
        _PATS.updated_at >= _SINCE
    ),
    select(literal_column("'token'"), _TOKENS.id, _NO_HASH, _TOKENS.user_id, _TOKENS.updated_at).where(
        _TOKENS.updated_at >= _SINCE
    ),
    select(literal_column("'user'"), _USERS.id, _NO_HASH, _USERS.id, _USERS.updated_at).where(
        _USERS.updated_at >= _SINCE
    ),
)
"""Every PAT, legacy token and user changed since ``since``: ``(kind, id, token hash, user id, updated_at)``.

One statement, hence one round trip: on a busy worker each round trip waits for the event loop, and a poll that
takes long leaves less of its confirmation to use (a poll of three statements took about 150 ms under load)."""


class CredentialWatcher:
    """Polls for users and tokens changed by other workers and drops their cached verifications here."""

    # Rows are re-read this far back, so a writer whose clock or commit lags a little is still seen.
    OVERLAP = timedelta(seconds=5)

    def __init__(self, engine: AsyncEngine, verifier: TokenVerifier, interval_seconds: float) -> None:
        self._engine = reader(engine)
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
            rows = (await connection.execute(CHANGES, {"since": since})).all()
        verifier = self._verifier
        for kind, row_id, token_hash, user_id, updated_at in rows:
            if not self._is_new(kind, row_id, updated_at):
                continue
            if kind == "pat":
                verifier.forget_token(token_hash)
            else:  # a legacy row changes its hash on regeneration, so the cached (old) one is found through its user
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
