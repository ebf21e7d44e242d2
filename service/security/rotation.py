"""Server-secret rotation: a token stored under an earlier secret moves to the current one when it is presented.

Token hashes are keyed by the server secret, so a new secret alone would invalidate every issued token. With the
old secret in ``security.previous_secrets``, a presented token that is not found under the current secret is
looked for under the earlier ones; when found, its row is rewritten under the current secret (and a legacy key is
re-encrypted with it), so the old secret can be dropped once every token that matters has been used.
"""

from __future__ import annotations

from service.auth_tokens.repositories import AuthTokenRepository
from service.crypto import Keyring
from service.pats.repositories import PatRepository
from service.security.collaborators import SessionFactory
from service.security.principal import CredentialKind


async def adopt_previous_secret(keyring: Keyring, session: SessionFactory, kind: CredentialKind, token: str) -> bool:
    """Move ``token``'s row from an earlier secret's hash to the current one; whether there was such a row."""
    old_hashes = keyring.previous_hashes(token)
    if not old_hashes:
        return False
    async with session() as transaction:
        if kind is CredentialKind.TOKEN:
            return await AuthTokenRepository(session=transaction).rekey(old_hashes, token, keyring)
        return await PatRepository(session=transaction).rehash(old_hashes, keyring.token_hash(token))
