"""The rows a presented credential is verified against, read on a verification cache miss.

One indexed query per miss (the unique token hash, joined to the owner), in SQLAlchemy Core on a pooled connection
(:func:`reader`): no session, ORM identity map or object construction, and no transaction to commit or leave open.
Measured in ``python -m bench`` (the cache-miss path). Whether the token may be used is not stated here: the row
carries the verdict of its model's ``usable_clause`` (``usable``), and a PAT's of ``retired_clause`` (``retired``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Row, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from service.auth_tokens.models import AuthToken
from service.pats.models import PersonalAccessToken
from service.security.principal import CredentialKind
from service.users.models import User

_PATS, _TOKENS, _USERS = PersonalAccessToken.__table__.c, AuthToken.__table__.c, User.__table__.c
_OWNER = (
    _USERS.id.label("user_id"),
    _USERS.uuid.label("user_uuid"),
    _USERS.username,
    _USERS.is_staff,
)
_NOW: BindParameter[datetime] = bindparam("now")
PAT_BY_HASH = (
    select(
        _PATS.id,
        _PATS.uuid,
        _PATS.name,
        _PATS.scopes,
        _PATS.allowed_scopes,
        _PATS.allowed_networks,
        _PATS.expires_at,
        _PATS.grace_until,
        _PATS.last_used_ip,
        *_OWNER,
        PersonalAccessToken.usable_clause(_NOW).label("usable"),
        PersonalAccessToken.retired_clause(_NOW).label("retired"),
    )
    .join_from(PersonalAccessToken.__table__, User.__table__, _USERS.id == _PATS.user_id)
    .where(_PATS.token_hash == bindparam("token_hash"))
)
LEGACY_BY_HASH = (
    select(
        _TOKENS.id, _TOKENS.refreshed_at, *_OWNER, _USERS.token_lifetime, AuthToken.usable_clause(_NOW).label("usable")
    )
    .join_from(AuthToken.__table__, User.__table__, _USERS.id == _TOKENS.user_id)
    .where(_TOKENS.key_hash == bindparam("token_hash"))
)


async def find_credential(engine: AsyncEngine, kind: CredentialKind, token_hash: str, now: datetime) -> Row[Any] | None:
    """The stored token of ``kind`` with this hash, joined to its owner, or None.

    The row has the columns of ``PAT_BY_HASH`` or ``LEGACY_BY_HASH``, ``usable`` and ``retired`` judged at ``now``.
    """
    statement: Select[Any] = PAT_BY_HASH if kind is CredentialKind.PAT else LEGACY_BY_HASH
    async with engine.connect() as connection:
        row: Row[Any] | None = (await connection.execute(statement, {"token_hash": token_hash, "now": now})).first()
    return row
