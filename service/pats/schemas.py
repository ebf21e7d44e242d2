"""Wire shapes of Waldur's *Personal Access Tokens* API. Only :class:`PatCreated` carries a plaintext token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from service.text import NAME

PatName = Annotated[str, msgspec.Meta(max_length=150), NAME]
Scope = Annotated[str, msgspec.Meta(max_length=100), NAME]
Network = Annotated[str, msgspec.Meta(max_length=64), NAME]


class AllowedScopeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A binding requested at creation: the token may act only on this entity and below it."""

    type: Annotated[str, msgspec.Meta(max_length=64), NAME]
    uuid: UUID


class AllowedScopeOut(msgspec.Struct, kw_only=True):
    """A binding as shown; a deleted entity shows ``uuid: null`` and ``name: "(deleted)"``."""

    type: str
    uuid: UUID | None
    name: str | None


class PatCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Input of ``POST /api/personal-access-tokens/``."""

    name: PatName
    scopes: Annotated[list[Scope], msgspec.Meta(max_length=200)]
    expires_at: datetime
    allowed_scopes: Annotated[list[AllowedScopeIn], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    allowed_networks: Annotated[list[Network], msgspec.Meta(max_length=1000)] = msgspec.field(default_factory=list)


class NetworkAclUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Input of ``set_network_acl``: the whole new list (``[]`` removes the restriction)."""

    allowed_networks: Annotated[list[Network], msgspec.Meta(max_length=1000)]


class PatRead(msgspec.Struct, kw_only=True):
    """A token in lists and retrieves: never the secret."""

    uuid: UUID
    name: str
    token_prefix: str
    scopes: list[str]
    allowed_scopes: list[AllowedScopeOut]
    allowed_networks: list[str]
    expires_at: datetime
    is_active: bool
    last_used_at: datetime | None
    last_used_ip: str | None
    use_count: int
    created: datetime


class PatCreated(msgspec.Struct, kw_only=True):
    """Create and rotate responses: the plaintext ``token``, shown this once."""

    uuid: UUID
    name: str
    token: str
    scopes: list[str]
    allowed_scopes: list[AllowedScopeOut]
    allowed_networks: list[str]
    expires_at: datetime
    created: datetime


class AvailableScope(msgspec.Struct, kw_only=True):
    """A permission the caller may delegate now."""

    permission: str
    description: str


class BindingTarget(msgspec.Struct, kw_only=True):
    """Entity types the caller may bind ``permission`` to."""

    permission: str
    types: list[str]
