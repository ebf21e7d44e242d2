"""Wire shapes of legacy tokens: login, *Auth Tokens* (``/api/auth-tokens/``), *Get All Auth Tokens* (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from service.text import NAME, TEXT

LoginUsername = Annotated[str, msgspec.Meta(min_length=1, max_length=128), NAME]
LoginPassword = Annotated[str, msgspec.Meta(min_length=1, max_length=128), TEXT]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api-auth/password/``."""

    username: LoginUsername
    password: LoginPassword


class LoginResponse(msgspec.Struct):
    """The user's legacy key: the same one while it stays valid."""

    token: str


class AuthTokenRead(msgspec.Struct, kw_only=True):
    """*Auth Tokens*: a user's token as staff see it (never the key)."""

    url: str
    created: datetime
    user: str
    user_first_name: str
    user_last_name: str
    user_username: str
    user_is_active: bool
    user_token_lifetime: int | None


class TokenUserData(msgspec.Struct, kw_only=True):
    """*Get All Auth Tokens*: the token's owner."""

    id: int
    username: str
    full_name: str


class AdminAuthTokenRead(msgspec.Struct, kw_only=True):
    """*Get All Auth Tokens* item. ``key`` is the display prefix only: plaintext keys are never shown after issue."""

    id: int
    key: str
    user_data: TokenUserData
    created_at: datetime
    updated_at: datetime
