"""Wire shapes of entities."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from service.text import NAME

EntityType = Annotated[str, msgspec.Meta(min_length=1, max_length=64), NAME]
EntityName = Annotated[str, msgspec.Meta(min_length=1, max_length=255), NAME]


class EntityRead(msgspec.Struct, kw_only=True):
    """An entity as the API shows it."""

    url: str
    uuid: UUID
    type: str
    name: str
    parent: UUID | None
    created: datetime


class EntityCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Register an entity; a host system syncing its own objects passes their ``uuid``."""

    type: EntityType
    name: EntityName
    parent: UUID | None = None
    uuid: UUID | None = None


class EntityUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Rename or move an entity (``parent: null`` moves it to the root, where its type allows)."""

    name: EntityName | msgspec.UnsetType = msgspec.UNSET
    parent: UUID | msgspec.UnsetType | None = msgspec.UNSET
