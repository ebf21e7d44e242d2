"""User management: creation with argon2 hashes, updates, and the token revocation that deactivation implies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import CursorResult, delete, or_, select, update

from service.auth_tokens.models import AuthToken
from service.db.transaction import after_commit
from service.errors import ValidationError
from service.events.services import EventType
from service.pagination import Window
from service.pats.models import PersonalAccessToken, live_at
from service.runtime import DomainService
from service.users.models import User
from service.users.schemas import UserCreate, UserUpdate

if TYPE_CHECKING:
    pass

_hasher = PasswordHasher()
# Verifying against this keeps the time of "no such user" equal to that of "wrong password".
_DUMMY_HASH = _hasher.hash("tokengate-dummy-password")


async def hash_password(password: str) -> str:
    """Argon2id hash, computed off the event loop."""
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """Constant-work check of ``password`` against ``password_hash`` (an empty hash never matches)."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)


class UserRepository(SQLAlchemyAsyncRepository[User]):
    """Data access for users."""

    model_type = User


class UserService(DomainService[User, UserRepository]):
    """Creates and changes users; deactivation revokes every token the user holds."""

    repository_type = UserRepository
    # A window-function count comes back with the rows, so a page past the end would report a total of 0.
    count_with_window_function = False

    async def listing(self, window: Window, *, username: str | None = None) -> tuple[list[User], int]:
        """A page of users by id, optionally only the one named ``username``."""
        filters = [User.username == username] if username is not None else []
        items, total = await self.get_many_and_count(window.filter, *filters, order_by=User.id.asc())
        return list(items), total

    async def search(self, term: str, window: Window) -> tuple[list[User], int]:
        """Users whose username, name or email contains ``term`` (all when empty), by username."""
        filters = []
        if term:
            filters.append(
                or_(
                    *(
                        column.icontains(term, autoescape=True)
                        for column in (User.username, User.first_name, User.last_name, User.email)
                    )
                )
            )
        items, total = await self.get_many_and_count(window.filter, *filters, order_by=User.username.asc())
        return list(items), total

    async def create_user(self, data: UserCreate, actor_id: int | None = None) -> User:
        """Create a user; 400 when the username is taken."""
        if await self.exists(username=data.username):
            raise ValidationError({"username": ["A user with that username already exists."]})
        fields = msgspec.structs.asdict(data)
        password = fields.pop("password")
        if fields["can_use_personal_access_tokens"] is None:
            fields["can_use_personal_access_tokens"] = self.runtime.settings.tokens.pat_default_allowed
        user = await self.create(User(**fields, password_hash=await hash_password(password) if password else ""))
        await self.events.record(
            EventType.USER_CREATED, f"User {user.username} has been created.", user_id=user.id, actor_id=actor_id
        )
        return user

    async def update_user(self, user: User, data: UserUpdate, actor_id: int | None = None) -> User:
        """Apply the fields sent; deactivation revokes the user's tokens in the same transaction."""
        changes = {name: value for name, value in msgspec.structs.asdict(data).items() if value is not msgspec.UNSET}
        if "password" in changes:
            changes["password_hash"] = await hash_password(changes.pop("password"))
        deactivated = user.is_active and changes.get("is_active") is False
        for name, value in changes.items():
            setattr(user, name, value)
        user = await self.update(user)
        if deactivated:
            await self.revoke_all_tokens(user.id)
        elif "token_lifetime" in changes:
            await self._reset_token_expiry(user)
        await self.events.record(
            EventType.USER_UPDATED,
            f"User {user.username} has been updated.",
            user_id=user.id,
            actor_id=actor_id,
            fields=sorted(name for name in changes if name != "password_hash"),
        )
        # Forgotten only after the commit, or a concurrent request re-caches them from the old rows.
        after_commit(self.repository.session, self.runtime.forget_user, user.id)
        return user

    async def _reset_token_expiry(self, user: User) -> None:
        token = await self.repository.session.scalar(select(AuthToken).where(AuthToken.user_id == user.id))
        if token is not None:
            token.expires_at = AuthToken.expiry_after(token.refreshed_at, user.token_lifetime)

    async def revoke_all_tokens(self, user_id: int) -> None:
        """Delete the legacy token and revoke every Personal Access Token of ``user_id``, those in grace included.

        A rotated-out token in its grace period would otherwise work again if the user were reactivated in time.
        """
        await self.repository.session.execute(delete(AuthToken).where(AuthToken.user_id == user_id))
        result: CursorResult[Any] = await self.repository.session.execute(  # type: ignore[assignment]
            update(PersonalAccessToken)
            .where(PersonalAccessToken.user_id == user_id, live_at(datetime.now(UTC)))
            .values(is_active=False, grace_until=None)
        )
        if result.rowcount:
            await self.events.record(
                EventType.PAT_REVOKED,
                f"All personal access tokens ({result.rowcount}) for user {user_id} have been revoked "
                "due to user deactivation.",
                user_id=user_id,
                count=result.rowcount,
            )
