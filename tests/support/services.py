"""Helpers of the service-level tests: a caller's principal, a refused call's field errors, recorded events."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import ValidationError
from service.events.models import Event
from service.pats.schemas import AllowedScopeIn, PatCreate
from service.security.principal import CredentialKind, Principal
from service.users.models import User


def principal_of(user: User) -> Principal:
    """``user`` as a caller authenticated with their legacy key."""
    return Principal(user.id, user.uuid, user.username, user.is_staff, CredentialKind.TOKEN)


def pat_request(
    *,
    name: str = "ci",
    scopes: tuple[str, ...] = ("PROJECT.UPDATE",),
    days: float = 30,
    bindings: tuple[tuple[str, Any], ...] = (),
    networks: tuple[str, ...] = (),
) -> PatCreate:
    """A creation request; ``bindings`` are ``(type, uuid)`` pairs."""
    return PatCreate(
        name=name,
        scopes=list(scopes),
        expires_at=datetime.now(UTC) + timedelta(days=days),
        allowed_scopes=[AllowedScopeIn(type=entity_type, uuid=uuid) for entity_type, uuid in bindings],
        allowed_networks=list(networks),
    )


async def refusal(session: AsyncSession, call: Awaitable[object]) -> dict[str, Any]:
    """The field errors of ``call``, which must fail validation; its transaction is rolled back."""
    with pytest.raises(ValidationError) as caught:
        await call
    await session.rollback()
    return caught.value.errors


async def events_of(session: AsyncSession, event_type: str) -> list[Event]:
    """The recorded events of ``event_type``, oldest first."""
    return list(await session.scalars(select(Event).where(Event.event_type == event_type).order_by(Event.id)))
