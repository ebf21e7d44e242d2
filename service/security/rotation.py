"""Server-secret rotation: a token stored under an earlier secret moves to the current one when it is presented.

Token hashes are keyed by the server secret, so a new secret alone would invalidate every issued token. With the
old secret in ``security.previous_secrets``, a presented token that is not found under the current secret is
looked for under the earlier ones; when found, its row is rewritten under the current secret (and a legacy key is
re-encrypted with it), so the old secret can be dropped once every token that matters has been used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from service.auth_tokens.models import AuthToken
from service.crypto import legacy_key_context
from service.pats.models import PersonalAccessToken
from service.security.principal import CredentialKind

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

    from service.runtime import Runtime


async def adopt_previous_secret(runtime: Runtime, kind: CredentialKind, token: str) -> bool:
    """Move ``token``'s row from an earlier secret's hash to the current one; whether there was such a row."""
    keyring = runtime.keyring
    old_hashes = keyring.previous_hashes(token)
    if not old_hashes:
        return False
    async with runtime.session() as session:
        if kind is CredentialKind.TOKEN:
            legacy = await session.scalar(select(AuthToken).where(AuthToken.key_hash.in_(old_hashes)))
            if legacy is None:
                return False
            legacy.key_hash = keyring.token_hash(token)
            legacy.key_encrypted = keyring.encrypt(token, legacy_key_context(legacy.user_id))
            return True
        result: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
            update(PersonalAccessToken)
            .where(PersonalAccessToken.token_hash.in_(old_hashes))
            .values(token_hash=keyring.token_hash(token))
        )
        return bool(result.rowcount)
