"""Wire shapes of users."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from service.text import NAME, TEXT

Username = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\w.@+-]+$(?!\n)")]
Name = Annotated[str, msgspec.Meta(max_length=100), NAME]
Email = Annotated[str, msgspec.Meta(max_length=320), NAME]
Mobile = Annotated[str, msgspec.Meta(max_length=64), NAME]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128), TEXT]
TokenLifetime = Annotated[int, msgspec.Meta(ge=60, le=10 * 365 * 86400)]


class UserRead(msgspec.Struct, kw_only=True):
    """A user as the API shows it."""

    url: str
    uuid: UUID
    id: int
    username: str
    first_name: str
    last_name: str
    full_name: str
    email: str
    mobile_number: str
    is_active: bool
    is_staff: bool
    token_lifetime: int | None
    can_use_personal_access_tokens: bool
    date_joined: datetime
    last_login: datetime | None


class UserCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Input of ``POST /api/users/``; omitted ``can_use_personal_access_tokens`` takes the configured default."""

    username: Username
    password: Password | None = None
    first_name: Name = ""
    last_name: Name = ""
    email: Email = ""
    mobile_number: Mobile = ""
    is_active: bool = True
    is_staff: bool = False
    token_lifetime: TokenLifetime | None = None
    can_use_personal_access_tokens: bool | None = None


class UserUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Input of ``PATCH /api/users/{uuid}/``: only the fields sent change."""

    password: Password | msgspec.UnsetType = msgspec.UNSET
    first_name: Name | msgspec.UnsetType = msgspec.UNSET
    last_name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    mobile_number: Mobile | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    is_staff: bool | msgspec.UnsetType = msgspec.UNSET
    token_lifetime: TokenLifetime | msgspec.UnsetType | None = msgspec.UNSET
    can_use_personal_access_tokens: bool | msgspec.UnsetType = msgspec.UNSET
