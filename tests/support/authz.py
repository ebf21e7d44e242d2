"""HTTP helpers of the authz tests: ask ``POST /api/authz/check/`` as a caller, and read a refusal."""

from __future__ import annotations

from httpx import AsyncClient, Response

from service.entities.models import Entity
from tests.support.world import Caller


def is_denial(response: Response, entity_type: str, uuid: object) -> bool:
    """Whether a check's answer refuses: ``allowed: false`` or, when the caller holds nothing on, above or below
    the entity, the 404 of an entity that does not exist.
    """
    if response.status_code == 404:
        return bool(response.json() == {"detail": f"{entity_type} with uuid {uuid} does not exist."})
    return response.status_code == 200 and response.json()["allowed"] is False


async def denied(client: AsyncClient, caller: Caller, permission: str, entity: Entity) -> bool:
    """Whether ``caller`` is refused ``permission`` on ``entity`` (see :func:`is_denial`)."""
    response = await client.post(
        "/api/authz/check/",
        headers=caller.headers,
        json={"permission": permission, "entity": {"type": entity.type, "uuid": str(entity.uuid)}},
    )
    return is_denial(response, entity.type, entity.uuid)


async def check(client: AsyncClient, caller: Caller, permission: str, entity: Entity) -> dict[str, object]:
    """The body of ``POST /api/authz/check/`` made with ``caller``'s token (asserting a 200)."""
    response = await client.post(
        "/api/authz/check/",
        headers=caller.headers,
        json={"permission": permission, "entity": {"type": entity.type, "uuid": str(entity.uuid)}},
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body
