"""Data access for legacy tokens, including the writes other parts make to them (refreshes, secret rotation)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import select, update

from service.auth_tokens.models import AuthToken
from service.crypto import Keyring, legacy_key_context


class AuthTokenRepository(SQLAlchemyAsyncRepository[AuthToken]):
    """Data access for legacy tokens."""

    model_type = AuthToken

    async def record_refresh(self, token_id: int, refreshed_at: datetime, lifetime: float | None) -> None:
        """Move the token's sliding window to ``refreshed_at`` unless it is there already (or later).

        ``updated_at`` does not move: in *Get All Auth Tokens* it changes only on regeneration.
        """
        await self.session.execute(
            update(AuthToken)
            .where(AuthToken.id == token_id, AuthToken.refreshed_at < refreshed_at)
            .values(
                refreshed_at=refreshed_at,
                expires_at=AuthToken.expiry_after(refreshed_at, lifetime),
                updated_at=AuthToken.updated_at,
            )
        )

    async def rekey(self, old_hashes: Collection[str], key: str, keyring: Keyring) -> bool:
        """Store the token found under one of ``old_hashes`` under ``keyring``'s current secret; whether found."""
        token = await self.session.scalar(select(AuthToken).where(AuthToken.key_hash.in_(old_hashes)))
        if token is None:
            return False
        token.key_hash = keyring.token_hash(key)
        token.key_encrypted = keyring.encrypt(key, legacy_key_context(token.user_id))
        return True
