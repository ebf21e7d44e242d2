"""Wire shape of audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class EventRead(msgspec.Struct, kw_only=True):
    """An audit event; ``context`` holds structured details and never a secret."""

    uuid: UUID
    event_type: str
    message: str
    user: UUID | None
    created: datetime
    context: dict[str, Any]
