"""HTTP helpers of the PAT tests: create a token, check a permission with it, use it, count and age tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import func, select, update
from waldur_api_client.client import AuthenticatedClient

from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.users.models import User
from tests.support.factories import auth


def in_days(days: float) -> str:
    """An ISO timestamp ``days`` from now."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def post_ok(client: AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """POST that must succeed; returns the body."""
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def create_pat(client: AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """Create a PAT (default: PROJECT.UPDATE for 30 days); returns the 201 body."""
    payload = {"name": "ci", "scopes": ["PROJECT.UPDATE"], "expires_at": in_days(30), **body}
    response = await client.post("/api/personal-access-tokens/", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def check(
    client: AsyncClient, token: str, permission: str, entity_type: str | None = None, entity: str | None = None
) -> Any:
    """``POST /api/authz/check/`` with ``token``; returns the response."""
    body: dict[str, Any] = {"permission": permission}
    if entity is not None:
        body["entity"] = {"type": entity_type, "uuid": entity}
    return await client.post("/api/authz/check/", json=body, headers=auth(token))


PATS = "/api/personal-access-tokens/"
BASE_URL = "http://testserver.local"


def waldur(app: Litestar, key: str, client_ip: str = "127.0.0.1") -> AuthenticatedClient:
    """The published ``waldur-api-client`` talking to ``app`` in-process from ``client_ip``."""
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
    return AuthenticatedClient(base_url=BASE_URL, token=key, httpx_args={"transport": transport})


async def use_token(client: AsyncClient, runtime: Runtime, token: str) -> None:
    """Make one authenticated request with ``token`` and flush usage, so it has ``last_used_at``/``last_used_ip``."""
    response = await client.get(PATS, headers=auth(token))
    assert response.status_code == 200, response.text
    await runtime.usage.flush()


async def count_pats(runtime: Runtime, user: User, *, active_only: bool = False) -> int:
    """How many PAT rows ``user`` has (only ``is_active`` ones with ``active_only``)."""
    query = select(func.count()).select_from(PersonalAccessToken).where(PersonalAccessToken.user_id == user.id)
    if active_only:
        query = query.where(PersonalAccessToken.is_active.is_(True))
    async with runtime.session() as session:
        return int(await session.scalar(query) or 0)


async def end_grace(runtime: Runtime, created: dict[str, Any]) -> None:
    """End the grace period of the rotated-out token ``created`` (a create response), as if it had run out."""
    async with runtime.session() as session:
        await session.execute(
            update(PersonalAccessToken)
            .where(PersonalAccessToken.uuid == UUID(created["uuid"]))
            .values(grace_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    runtime.verifier.forget_token(runtime.keyring.token_hash(created["token"]))


def flip_last(token: str) -> str:
    """``token`` with its last character changed (a wrong checksum)."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")
