"""Small factories for test data, going through the services (never raw JSON blobs)."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import select, update

from service.auth_tokens.models import AuthToken
from service.auth_tokens.services import AuthTokenService
from service.runtime import Runtime
from service.users.models import User
from service.users.schemas import UserCreate
from service.users.services import UserService


async def make_user(runtime: Runtime, username: str, *, staff: bool = False, password: str | None = None,
                    **fields: Any) -> User:
    """Create a user (no password unless given: argon2 is deliberately slow)."""
    data = msgspec.convert({"username": username, "is_staff": staff, "password": password, **fields}, UserCreate)
    async with runtime.session() as session:
        return await UserService(session=session, runtime=runtime).create_user(data)


async def make_key(runtime: Runtime, user: User) -> str:
    """The user's legacy key, as login would return it."""
    async with runtime.session() as session:
        return await AuthTokenService(session=session, runtime=runtime).obtain_key(user)


async def user_with_key(runtime: Runtime, username: str, *, staff: bool = False, **fields: Any) -> tuple[User, str]:
    """A user and their legacy key."""
    user = await make_user(runtime, username, staff=staff, **fields)
    return user, await make_key(runtime, user)


def auth(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Token {key}"}


async def set_token_times(runtime: Runtime, user: User, **times: Any) -> None:
    """Overwrite timestamps (``created_at``, ``updated_at``, ``refreshed_at``, ``expires_at``) of ``user``'s token."""
    async with runtime.session() as session:
        await session.execute(update(AuthToken).where(AuthToken.user_id == user.id).values(**times))
    runtime.forget_user(user.id)


async def token_of(runtime: Runtime, user: User) -> AuthToken | None:
    """``user``'s legacy token row, or None."""
    async with runtime.session() as session:
        return await session.scalar(select(AuthToken).where(AuthToken.user_id == user.id))
