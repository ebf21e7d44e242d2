"""The legacy key's lifecycle in ``AuthTokenService``, called directly: one key per user, replaced, deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth_tokens.models import AuthToken
from service.auth_tokens.services import USER_DISABLED, AuthTokenService
from service.crypto import legacy_key_context
from service.errors import AuthenticationError
from service.events.services import EventType
from service.runtime import Runtime
from service.users.models import User
from tests.support.factories import make_user
from tests.support.services import events_of


async def user_row(session: AsyncSession, runtime: Runtime, username: str, **fields: object) -> User:
    """A new user, read on ``session``."""
    user = await make_user(runtime, username, **fields)
    return await session.get_one(User, user.id)


async def token_row(session: AsyncSession, user: User) -> AuthToken:
    return (await session.execute(select(AuthToken).where(AuthToken.user_id == user.id))).scalar_one()


async def test_asking_again_returns_the_same_key(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice = await user_row(session, runtime, "alice")
    assert await legacy.obtain_key(alice) == await legacy.obtain_key(alice)


async def test_the_key_is_kept_as_its_hash_and_a_ciphertext_only(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice = await user_row(session, runtime, "alice")
    key = await legacy.obtain_key(alice)
    token = await token_row(session, alice)
    assert token.key_hash == runtime.keyring.token_hash(key)
    assert key.encode() not in token.key_encrypted


async def test_the_ciphertext_opens_only_for_its_owner(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice = await user_row(session, runtime, "alice")
    await legacy.obtain_key(alice)
    token = await token_row(session, alice)
    with pytest.raises(InvalidTag):
        runtime.keyring.decrypt(token.key_encrypted, legacy_key_context(alice.id + 1))


async def test_an_expired_key_is_replaced_in_the_same_row(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice = await user_row(session, runtime, "alice", token_lifetime=3600)
    old = await legacy.obtain_key(alice)
    token = await token_row(session, alice)
    row_id = token.id
    await session.execute(
        update(AuthToken).where(AuthToken.id == row_id).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await session.refresh(token)
    assert await legacy.obtain_key(alice) != old
    assert (await token_row(session, alice)).id == row_id


async def test_a_key_lives_as_long_as_its_users_token_lifetime(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice = await user_row(session, runtime, "alice", token_lifetime=3600)
    await legacy.obtain_key(alice)
    token = await token_row(session, alice)
    assert token.expires_at == token.refreshed_at + timedelta(seconds=3600)


async def test_a_key_without_a_token_lifetime_never_expires(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice = await user_row(session, runtime, "alice")
    await legacy.obtain_key(alice)
    assert (await token_row(session, alice)).expires_at is None


async def test_regeneration_gives_a_new_key_in_the_same_row(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice = await user_row(session, runtime, "alice")
    await legacy.obtain_key(alice)
    token = await token_row(session, alice)
    old_hash, row_id = token.key_hash, token.id
    regenerated = await legacy.regenerate(token)
    assert regenerated.key_hash != old_hash
    assert regenerated.id == row_id
    assert len(await events_of(session, EventType.TOKEN_REGENERATED)) == 1


async def test_deleting_a_key_marks_its_user_changed(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice = await user_row(session, runtime, "alice")
    await legacy.obtain_key(alice)
    before = alice.updated_at
    await legacy.delete_token(await token_row(session, alice))
    await session.refresh(alice)
    assert alice.updated_at > before  # other workers' polls of changed rows see the deletion this way


async def test_a_leak_report_deletes_only_the_keys_named(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    alice, bob = await user_row(session, runtime, "alice"), await user_row(session, runtime, "bob")
    leaked = await legacy.obtain_key(alice)
    await legacy.obtain_key(bob)
    count = await legacy.delete_leaked([runtime.keyring.token_hash(leaked), "0" * 64], "paste", "198.51.100.7")
    assert count == 1
    remaining = await session.scalars(select(AuthToken.user_id))
    assert list(remaining) == [bob.id]


async def test_a_disabled_user_cannot_sign_in_even_with_the_right_password(
    legacy: AuthTokenService, session: AsyncSession, runtime: Runtime
) -> None:
    await make_user(runtime, "alice", password="correct horse battery", is_active=False)
    with pytest.raises(AuthenticationError) as refused:
        await legacy.authenticate("alice", "correct horse battery", "192.0.2.1")
    assert refused.value.detail == USER_DISABLED
