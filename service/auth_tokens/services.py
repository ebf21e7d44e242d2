"""Legacy tokens: issue at login, sliding expiry, regeneration, and the staff listings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import ColumnElement, Select, or_, select, update

from service.auth_tokens.models import AuthToken
from service.auth_tokens.repositories import AuthTokenRepository
from service.crypto import display_prefix, is_legacy_key, legacy_key_context, new_legacy_key
from service.db.transaction import after_commit
from service.errors import AuthenticationError
from service.events.services import EventType
from service.pagination import Window
from service.runtime import DomainService
from service.text import is_name
from service.users.models import User
from service.users.services import verify_password

if TYPE_CHECKING:
    pass

BAD_CREDENTIALS = "Invalid username/password."
USER_DISABLED = "User account is disabled."


class TokenOrdering(StrEnum):
    """*Get All Auth Tokens* ``ordering`` values (``-`` for descending)."""

    ID = "id"
    ID_DESC = "-id"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    UPDATED_AT = "updated_at"
    UPDATED_AT_DESC = "-updated_at"
    USER = "user"
    USER_DESC = "-user"


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminTokenQuery:
    """*Get All Auth Tokens* filters, already validated."""

    search: str | None = None
    ordering: TokenOrdering | None = None
    id_min: int | None = None
    id_max: int | None = None
    created_date: date | None = None
    updated_date: date | None = None
    created_from: date | None = None
    created_to: date | None = None
    updated_from: date | None = None
    updated_to: date | None = None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _before_day_end(column: Any, day: date) -> list[ColumnElement[bool]]:
    """``column`` no later than the end of ``day``; nothing to say about the last representable day (9999-12-31)."""
    return [] if day == date.max else [column < _day_start(day + timedelta(days=1))]


def _date_filters(column: Any, exact: date | None, start: date | None, end: date | None) -> list[ColumnElement[bool]]:
    clauses = []
    if exact is not None:
        clauses += [column >= _day_start(exact), *_before_day_end(column, exact)]
    if start is not None:
        clauses.append(column >= _day_start(start))
    if end is not None:
        clauses += _before_day_end(column, end)
    return clauses


class AuthTokenService(DomainService[AuthToken, AuthTokenRepository]):
    """One token per user; the key is kept only as an HMAC (lookup) and AES-GCM ciphertext (re-display at login)."""

    repository_type = AuthTokenRepository
    # A window-function count comes back with the rows, so a page past the end would report a total of 0.
    count_with_window_function = False

    # -- login -------------------------------------------------------------------------------------------------
    async def login(self, username: str, password: str, ip: str) -> str:
        """Check the password and return the user's key (the same one while valid).

        Raises:
            Throttled: too many recent failures for this username or address.
            AuthenticationError: bad credentials or a disabled account.
        """
        return await self.obtain_key(await self.authenticate(username, password, ip))

    async def authenticate(self, username: str, password: str, ip: str) -> User:
        """The throttled password check shared by the API login and the page sign-in; records the attempt.

        Raises:
            Throttled: too many recent failures for this username or address.
            AuthenticationError: bad credentials or a disabled account.
        """
        throttle = self.runtime.throttle
        await throttle.admit(username, ip)  # counted (and committed) before the password is checked
        user = (  # a name no user can have (the page sign-in form has no schema) is not looked up at all
            await self.repository.session.scalar(select(User).where(User.username == username))
            if is_name(username)
            else None
        )
        if not await verify_password(user.password_hash if user else "", password) or user is None:
            await throttle.failed(username, ip, user.id if user else None)
            raise AuthenticationError(BAD_CREDENTIALS)
        if not user.is_active:
            raise AuthenticationError(USER_DISABLED)
        await throttle.succeeded(username, ip)
        user.last_login = datetime.now(UTC)
        await self.events.record(
            EventType.LOGIN_SUCCEEDED, f"User {username} authenticated with username and password.", user_id=user.id
        )
        return user

    async def obtain_key(self, user: User) -> str:
        """The user's valid key, creating or replacing (if expired or unreadable) the token as needed."""
        token = await self.get_one_or_none(AuthToken.user_id == user.id)
        now = datetime.now(UTC)
        if token is not None and token.is_usable(now):
            try:
                return self.runtime.keyring.decrypt(token.key_encrypted, legacy_key_context(user.id))
            except InvalidTag:
                pass  # the server secret changed: issue a new key below
        key = new_legacy_key()
        if token is None:
            await self.create(AuthToken(user_id=user.id, **self._key_fields(key, user, now)))
            await self.events.record(
                EventType.TOKEN_CREATED, f"Token for user {user.username} has been created.", user_id=user.id
            )
        else:
            await self._replace_key(token, key, user, now)
        return key

    async def regenerate(self, token: AuthToken) -> AuthToken:
        """Give ``token`` a new key (same id); the old key stops working at once."""
        await self._replace_key(token, new_legacy_key(), token.user, datetime.now(UTC))
        return token

    async def _replace_key(self, token: AuthToken, key: str, user: User, now: datetime) -> None:
        old_hash = token.key_hash
        for name, value in self._key_fields(key, user, now).items():
            setattr(token, name, value)
        token.updated_at = now
        await self.update(token)
        await self.events.record(
            EventType.TOKEN_REGENERATED, f"Token for user {user.username} has been regenerated.", user_id=user.id
        )
        # Forgotten only after the commit: forgetting earlier lets a concurrent request re-cache the old key from
        # the still-committed row, and the old key then works after the response said it was replaced.
        after_commit(self.repository.session, self.runtime.forget_token, old_hash)

    def _key_fields(self, key: str, user: User, now: datetime) -> dict[str, Any]:
        keyring = self.runtime.keyring
        return {
            "key_hash": keyring.token_hash(key),
            "key_prefix": display_prefix(key),
            "key_encrypted": keyring.encrypt(key, legacy_key_context(user.id)),
            "refreshed_at": now,
            "expires_at": AuthToken.expiry_after(now, user.token_lifetime),
        }

    async def delete_token(self, token: AuthToken) -> None:
        """Delete a user's token: every session using it ends.

        The user is marked changed: a deleted row is invisible to the other workers' polls of changed rows.
        """
        await self.delete(token.id)
        await self.repository.session.execute(
            update(User).where(User.id == token.user_id).values(updated_at=datetime.now(UTC))
        )
        await self.events.record(
            EventType.TOKEN_DELETED, f"Token for user {token.user.username} has been deleted.", user_id=token.user_id
        )
        after_commit(self.repository.session, self.runtime.forget_token, token.key_hash)  # see _replace_key

    async def delete_leaked(self, key_hashes: list[str], source: str, reporter: str) -> int:
        """Delete the legacy tokens among ``key_hashes`` (reported found in public); returns how many.

        Their users log in again for a new key; each gets a ``token_reported_leaked`` event with ``source`` and
        ``reporter`` (see ``PatService.revoke_leaked``).
        """
        tokens = list(await self.get_many(AuthToken.key_hash.in_(key_hashes)))
        for token in tokens:
            await self.delete(token.id)
            await self.events.record(
                EventType.TOKEN_REPORTED_LEAKED,
                f"Token for user {token.user.username} was reported as leaked and has been deleted.",
                user_id=token.user_id,
                reported_source=source,
                reporter_address=reporter,
            )
        for token in tokens:
            after_commit(self.repository.session, self.runtime.forget_token, token.key_hash)  # see _replace_key
        return len(tokens)

    # -- staff listings ----------------------------------------------------------------------------------------
    def _active(self) -> Select[Any]:
        return select(AuthToken).join(AuthToken.user).where(AuthToken.usable_clause(datetime.now(UTC)))

    async def list_active(self, window: Window) -> tuple[list[AuthToken], int]:
        """*Auth Tokens*: tokens that have not expired, newest user first."""
        items, total = await self.get_many_and_count(
            window.filter, statement=self._active().order_by(AuthToken.user_id.desc())
        )
        return list(items), total

    async def get_active_for_user(self, user_id: int) -> AuthToken:
        """*Auth Tokens* retrieve/delete: the user's unexpired token, or 404."""
        return await self.get_one(statement=self._active().where(AuthToken.user_id == user_id))

    async def list_for_admin(self, query: AdminTokenQuery, window: Window) -> tuple[list[AuthToken], int]:
        """*Get All Auth Tokens*: every token, filtered, searched and ordered."""
        clauses: list[ColumnElement[bool]] = []
        if query.id_min is not None:
            clauses.append(AuthToken.id >= query.id_min)
        if query.id_max is not None:
            clauses.append(AuthToken.id <= query.id_max)
        clauses += _date_filters(AuthToken.created_at, query.created_date, query.created_from, query.created_to)
        clauses += _date_filters(AuthToken.updated_at, query.updated_date, query.updated_from, query.updated_to)
        if query.search:
            clauses.append(self._search(query.search))
        statement: Select[Any] = (
            select(AuthToken).join(AuthToken.user).where(*clauses).order_by(*_ordering(query.ordering))
        )
        items, total = await self.get_many_and_count(window.filter, statement=statement)
        return list(items), total

    def _search(self, term: str) -> ColumnElement[bool]:
        """Waldur's search fields, matched literally; a pasted full key finds its token through its hash."""
        matches = [
            AuthToken.key_prefix.startswith(term[:16], autoescape=True),
            *(
                column.icontains(term, autoescape=True)
                for column in (User.username, User.mobile_number, User.first_name, User.last_name)
            ),
        ]
        if term.isascii() and term.isdigit() and len(term) <= 18:  # "²".isdigit() is True, int("²") fails
            matches.append(AuthToken.id == int(term))
        if is_legacy_key(term):
            matches.append(AuthToken.key_hash.in_(self.runtime.keyring.lookup_hashes(term)))
        return or_(*matches)


def _ordering(ordering: TokenOrdering | None) -> list[Any]:
    if ordering is None:
        return [AuthToken.id.asc()]
    name = ordering.value.lstrip("-")
    column = AuthToken.user_id if name == "user" else getattr(AuthToken, name)
    return [column.desc() if ordering.value.startswith("-") else column.asc(), AuthToken.id.asc()]
