"""Helpers shared by the authz route tests: a small default-policy tree, callers and the check call."""

from __future__ import annotations

from dataclasses import dataclass, field

from httpx import AsyncClient, Response

from service.entities.models import Entity
from service.runtime import Runtime
from service.users.models import User
from tests.factories import auth, make_entity, user_with_key


@dataclass
class Tree:
    """Two customers of the default policy's hierarchy.

    ::

        acme ─┬─ web ── web_vm        initech ── billing ── billing_db
              ├─ data ── data_vm
              └─ shop (offering)
    """

    acme: Entity
    web: Entity
    web_vm: Entity
    data: Entity
    data_vm: Entity
    shop: Entity
    initech: Entity
    billing: Entity
    billing_db: Entity

    def __getitem__(self, name: str) -> Entity:
        entity: Entity = getattr(self, name)
        return entity


async def make_tree(runtime: Runtime) -> Tree:
    """The tree in :class:`Tree`, registered through the entity service."""
    acme = await make_entity(runtime, "customer", "ACME")
    web = await make_entity(runtime, "project", "Web", parent=acme)
    data = await make_entity(runtime, "project", "Data", parent=acme)
    initech = await make_entity(runtime, "customer", "Initech")
    billing = await make_entity(runtime, "project", "Billing", parent=initech)
    return Tree(
        acme=acme,
        web=web,
        web_vm=await make_entity(runtime, "resource", "web-vm", parent=web),
        data=data,
        data_vm=await make_entity(runtime, "resource", "data-vm", parent=data),
        shop=await make_entity(runtime, "offering", "Shop", parent=acme),
        initech=initech,
        billing=billing,
        billing_db=await make_entity(runtime, "resource", "db", parent=billing),
    )


@dataclass
class Caller:
    """A user and the headers of their legacy token."""

    user: User
    headers: dict[str, str] = field(repr=False)


async def make_caller(runtime: Runtime, username: str, *, staff: bool = False) -> Caller:
    """A user with a legacy token."""
    user, key = await user_with_key(runtime, username, staff=staff)
    return Caller(user, auth(key))


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
