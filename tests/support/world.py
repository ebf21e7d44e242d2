"""The one test world: an entity tree, callers with legacy keys, and (for the security suite) a bound PAT.

Everything is made through the domain services (see :mod:`tests.support.factories`), never through HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from service.entities.models import Entity
from service.runtime import Runtime
from service.users.models import User
from tests.support.factories import auth, grant, make_entity, user_with_key


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


async def build_tree(runtime: Runtime) -> Tree:
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


@dataclass
class World:
    """The tree, a staff caller, and an owner holding CUSTOMER.OWNER on ``tree.acme``.

    The PAT tests send entity uuids in JSON, so the entities they use most are also given as strings:
    ``customer`` (acme), ``project`` (web), ``sibling`` (data), ``resource`` (web_vm), ``other_customer`` (initech).
    """

    staff: User
    staff_headers: dict[str, str]
    owner: User
    owner_headers: dict[str, str]
    tree: Tree

    @property
    def customer(self) -> str:
        return str(self.tree.acme.uuid)

    @property
    def project(self) -> str:
        return str(self.tree.web.uuid)

    @property
    def sibling(self) -> str:
        return str(self.tree.data.uuid)

    @property
    def resource(self) -> str:
        return str(self.tree.web_vm.uuid)

    @property
    def other_customer(self) -> str:
        return str(self.tree.initech.uuid)


async def build_world(runtime: Runtime, staff: Caller, tree: Tree) -> World:
    """The :class:`World` over ``tree``, with ``staff`` and a new owner (username ``owner``) of ``tree.acme``."""
    owner = await make_caller(runtime, "owner")
    await grant(runtime, owner.user, "CUSTOMER.OWNER", tree.acme, actor=staff.user)
    return World(staff.user, staff.headers, owner.user, owner.headers, tree)


@dataclass
class Identities:
    """Who the security tests act as: staff (legacy key), the world's owner (legacy key) and the owner's PAT bound
    to the world's project.
    """

    world: World
    pat: str
    pat_uuid: str

    @property
    def staff_id(self) -> int:
        return self.world.staff.id

    @property
    def staff_key(self) -> str:
        return key_of(self.world.staff_headers)

    @property
    def user_id(self) -> int:
        return self.world.owner.id

    @property
    def user_key(self) -> str:
        return key_of(self.world.owner_headers)

    @property
    def user_uuid(self) -> str:
        return str(self.world.owner.uuid)

    @property
    def customer(self) -> str:
        return self.world.customer

    @property
    def project(self) -> str:
        return self.world.project

    def headers(self, who: str) -> dict[str, str]:
        """The Authorization header of ``who`` (``staff``, ``user`` or ``pat``)."""
        return {"staff": self.world.staff_headers, "user": self.world.owner_headers, "pat": auth(self.pat)}[who]


def key_of(headers: dict[str, str]) -> str:
    """The token in an ``Authorization`` header built by :func:`tests.support.factories.auth`."""
    return headers["Authorization"].split(" ", 1)[1]


async def build_identities(runtime: Runtime, client: httpx.AsyncClient) -> Identities:
    """A new :class:`World` and its owner's PAT (PROJECT.UPDATE, bound to the world's project), made through
    ``client``.
    """
    world = await build_world(runtime, await make_caller(runtime, "root", staff=True), await build_tree(runtime))
    body = {
        "name": "bound",
        "scopes": ["PROJECT.UPDATE"],
        "allowed_scopes": [{"type": "project", "uuid": world.project}],
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
    }
    response = await client.post("/api/personal-access-tokens/", json=body, headers=world.owner_headers)
    assert response.status_code == 201, response.text
    created = response.json()
    return Identities(world, created["token"], created["uuid"])
