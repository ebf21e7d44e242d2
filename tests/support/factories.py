"""Small factories for test data, going through the services (never raw JSON blobs)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import select, update

from service.auth_tokens.models import AuthToken
from service.auth_tokens.services import AuthTokenService
from service.authz.models import RoleAssignment
from service.authz.schemas import EntityRef, RoleAssignmentCreate
from service.authz.services import RoleAssignmentService
from service.entities.models import Entity
from service.entities.schemas import EntityCreate
from service.entities.services import EntityService
from service.runtime import Runtime
from service.users.models import User
from service.users.schemas import UserCreate
from service.users.services import UserService


async def make_user(
    runtime: Runtime, username: str, *, staff: bool = False, password: str | None = None, **fields: Any
) -> User:
    """Create a user (no password unless given: argon2 is deliberately slow)."""
    data = msgspec.convert({"username": username, "is_staff": staff, "password": password, **fields}, UserCreate)
    async with runtime.session() as session:
        return await UserService(session=session, runtime=runtime).create_user(data)


async def make_key(runtime: Runtime, user: User) -> str:
    """The user's legacy key, as login would return it."""
    async with runtime.session() as session:
        return await AuthTokenService(session=session, runtime=runtime).obtain_key(user)


async def user_with_key(runtime: Runtime, username: str, *, staff: bool = False, **fields: Any) -> tuple[User, str]:
    """A user and their legacy key."""
    user = await make_user(runtime, username, staff=staff, **fields)
    return user, await make_key(runtime, user)


def auth(key: str) -> dict[str, str]:
    """The Authorization header for ``key``."""
    return {"Authorization": f"Token {key}"}


async def set_token_times(runtime: Runtime, user: User, **times: Any) -> None:
    """Overwrite timestamps (``created_at``, ``updated_at``, ``refreshed_at``, ``expires_at``) of ``user``'s token."""
    async with runtime.session() as session:
        await session.execute(update(AuthToken).where(AuthToken.user_id == user.id).values(**times))
    await runtime.forget_user(user.id)


async def token_of(runtime: Runtime, user: User) -> AuthToken | None:
    """``user``'s legacy token row, or None."""
    async with runtime.session() as session:
        return await session.scalar(select(AuthToken).where(AuthToken.user_id == user.id))


async def make_entity(
    runtime: Runtime,
    entity_type: str,
    name: str | None = None,
    *,
    parent: Entity | None = None,
    uuid: UUID | None = None,
) -> Entity:
    """Register an entity through the entity service (so the policy engine mirrors it)."""
    data = EntityCreate(type=entity_type, name=name or entity_type, parent=parent.uuid if parent else None, uuid=uuid)
    async with runtime.session() as session:
        return await EntityService(session=session, runtime=runtime).register(data)


async def delete_entity(runtime: Runtime, entity: Entity) -> None:
    """Delete a leaf entity through the entity service (so the policy engine forgets it)."""
    async with runtime.session() as session:
        await EntityService(session=session, runtime=runtime).remove(await session.get_one(Entity, entity.id))


async def grant(
    runtime: Runtime,
    user: User,
    role: str,
    entity: Entity,
    *,
    expiration_time: datetime | None = None,
    actor: User | None = None,
) -> RoleAssignment:
    """Grant ``role`` on ``entity`` to ``user`` through the role-assignment service."""
    data = RoleAssignmentCreate(
        user=user.uuid, role=role, scope=EntityRef(type=entity.type, uuid=entity.uuid), expiration_time=expiration_time
    )
    async with runtime.session() as session:
        return await RoleAssignmentService(session=session, runtime=runtime).grant(data, actor_id=(actor or user).id)


async def revoke(runtime: Runtime, assignment: RoleAssignment, *, actor: User | None = None) -> None:
    """Revoke ``assignment`` through the role-assignment service."""
    async with runtime.session() as session:
        service = RoleAssignmentService(session=session, runtime=runtime)
        await service.revoke(
            await service.get_one(uuid=assignment.uuid), actor_id=actor.id if actor else assignment.user_id
        )


async def find_user(runtime: Runtime, username: str) -> User:
    """The user called ``username``, fresh from the database."""
    async with runtime.session() as session:
        return (await session.execute(select(User).where(User.username == username))).scalar_one()


def parse_links(header: str) -> dict[str, str]:
    """``{rel: url}`` of an RFC 5988 ``Link`` header."""
    return {rel: url for url, rel in re.findall(r'<([^>]*)>; rel="([a-z]+)"', header)}
