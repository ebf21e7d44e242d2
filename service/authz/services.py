"""Granting and revoking roles, and asking the policy engine on behalf of a caller."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from advanced_alchemy.exceptions import IntegrityError
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import select, update

from service.authz.models import RoleAssignment
from service.authz.schemas import CheckTarget, EntityRef, RoleAssignmentCreate
from service.authz.sync import FactSync, spelled
from service.db.transaction import after_commit
from service.entities.models import Entity
from service.errors import NotFound, ValidationError
from service.events.services import EventType
from service.pagination import Window
from service.policy import Decision
from service.runtime import DomainService
from service.timeutil import input_utc
from service.users.models import User

if TYPE_CHECKING:
    from service.policy import PolicyEngine, Subject
    from service.runtime import Runtime


class RoleAssignmentRepository(SQLAlchemyAsyncRepository[RoleAssignment]):
    """Data access for role assignments."""

    model_type = RoleAssignment


class RoleAssignmentService(DomainService[RoleAssignment, RoleAssignmentRepository]):
    """Grants and revokes roles; each change reaches the policy engine once it is committed (``after_commit``)."""

    repository_type = RoleAssignmentRepository

    def __init__(self, session: Any, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(session=session, runtime=runtime, **kwargs)
        self.sync = FactSync(runtime)

    async def listing(
        self, window: Window, *, user: UUID | None = None, role: str | None = None, is_active: bool | None = None
    ) -> tuple[list[RoleAssignment], int]:
        """A page of assignments, newest first, optionally of one user (UUID), one role, active or not."""
        filters: list[Any] = []
        if user is not None:
            filters.append(RoleAssignment.user_id.in_(select(User.id).where(User.uuid == user)))
        if role is not None:
            filters.append(RoleAssignment.role == role)
        if is_active is not None:
            filters.append(RoleAssignment.is_active.is_(is_active))
        items, total = await self.get_many_and_count(window.filter, *filters, order_by=RoleAssignment.id.desc())
        return list(items), total

    async def holders(self, items: list[RoleAssignment]) -> list[tuple[RoleAssignment, User, Entity]]:
        """Each assignment with its user and entity, looked up in two queries."""
        session = self.repository.session
        users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_({a.user_id for a in items})))}
        entities = {
            e.id: e for e in await session.scalars(select(Entity).where(Entity.id.in_({a.entity_id for a in items})))
        }
        return [(a, users[a.user_id], entities[a.entity_id]) for a in items]

    async def grant(self, data: RoleAssignmentCreate, actor_id: int) -> RoleAssignment:
        """Grant a role declared in the policy on an entity of the role's type."""
        session = self.repository.session
        errors: dict[str, list[str]] = {}
        role = self.runtime.policy.roles.get(data.role)
        if role is None:
            errors["role"] = [f"Unknown role '{data.role}'. Expected one of: {sorted(self.runtime.policy.roles)}."]
        user = await session.scalar(select(User).where(User.uuid == data.user))
        if user is None:
            errors["user"] = [f"User with uuid {data.user} does not exist."]
        entity = await find_entity(session, data.scope)
        if entity is None:
            errors["scope"] = [f"{data.scope.type} with uuid {data.scope.uuid} does not exist."]
        elif role is not None and entity.type != role.scope_type:
            errors["scope"] = [
                f"Role {role.name} is held on entities of type '{role.scope_type}', not '{entity.type}'."
            ]
        expiration_time = (
            input_utc(data.expiration_time, "expiration_time") if data.expiration_time is not None else None
        )
        if expiration_time is not None and expiration_time <= datetime.now(UTC):
            errors["expiration_time"] = ["Expiration time must be in the future."]
        if errors:
            raise ValidationError(errors)
        assert user is not None and entity is not None
        held = (
            RoleAssignment.user_id == user.id,
            RoleAssignment.role == data.role,
            RoleAssignment.entity_id == entity.id,
            RoleAssignment.is_active.is_(True),
        )
        # An expired assignment grants nothing: it is closed, so the role can be granted again.
        closed = list(
            await session.scalars(
                update(RoleAssignment)
                .where(*held, RoleAssignment.expiration_time <= datetime.now(UTC))
                .values(is_active=False)
                .returning(RoleAssignment.uuid)
            )
        )
        already = ValidationError({"role": [f"User {user.username} already holds {data.role} on this {entity.type}."]})
        if await session.scalar(select(RoleAssignment.id).where(*held).limit(1)) is not None:
            raise already
        try:
            assignment = await self.create(
                RoleAssignment(
                    user_id=user.id,
                    role=data.role,
                    entity_id=entity.id,
                    expiration_time=expiration_time,
                    created_by_id=actor_id,
                )
            )
        except IntegrityError as exc:  # an identical grant committed since the check above (a unique index)
            raise already from exc
        await self._record(EventType.ROLE_GRANTED, "has been granted", user, data.role, entity, actor_id)
        for uuid in [*closed, assignment.uuid]:
            after_commit(session, self.sync.refresh_assignment, session, str(uuid))
        return assignment

    async def revoke(self, assignment: RoleAssignment, actor_id: int) -> None:
        """End an assignment now; the next decision no longer counts it."""
        session = self.repository.session
        if assignment.is_active:
            assignment.is_active = False
            assignment.expiration_time = datetime.now(UTC)
            await self.update(assignment)
            user = await session.get_one(User, assignment.user_id)
            entity = await session.get_one(Entity, assignment.entity_id)
            await self._record(EventType.ROLE_REVOKED, "has lost", user, assignment.role, entity, actor_id)
        after_commit(session, self.sync.refresh_assignment, session, str(assignment.uuid))

    async def _record(self, event_type: str, change: str, user: User, role: str, entity: Entity, actor_id: int) -> None:
        """A role event about ``user``: "User NAME ``change`` ROLE on TYPE NAME."."""
        message = f"User {user.username} {change} {role} on {entity.type} {entity.name}."
        await self.events.record(
            event_type, message, user_id=user.id, actor_id=actor_id, role=role, scope_uuid=str(entity.uuid)
        )


async def find_entity(session: Any, ref: EntityRef) -> Entity | None:
    """The entity ``ref`` names, if it exists with that type."""
    entity: Entity | None = await session.scalar(select(Entity).where(Entity.uuid == ref.uuid, Entity.type == ref.type))
    return entity


def authorize(policy: PolicyEngine, subject: Subject, permission: str, ref: CheckTarget | None) -> Decision:
    """May ``subject`` use ``permission`` on ``ref``? 400 for an unknown permission or type, 404 for an unknown entity.

    An entity the subject may not learn of (``PolicyEngine.is_visible_to``: a non-staff user holding nothing on, above
    or below it) answers the same 404 as an unknown one, so the check is no oracle of what exists.
    Answered from the engine's mirror alone: no database round-trip on this path (``POST /api/authz/check/``).
    """
    if permission not in policy.permissions:
        raise ValidationError({"permission": [f"Unknown permission '{permission}'."]})
    if ref is None:
        return policy.decide(subject, permission, None)
    if ref.type not in policy.entity_types:
        raise ValidationError({"entity": [f"Unknown entity type '{ref.type}'."]})
    uuid = spelled(ref.uuid)
    entity = policy.entity(uuid)
    if entity is not None and entity.type == ref.type:
        decision = policy.decide(subject, permission, entity.uuid)
        # an allowed decision implies visibility: the hot path asks nothing more
        if decision.allowed or policy.is_visible_to(subject.user_id, subject.is_staff, entity.uuid):
            return decision
    raise NotFound(f"{ref.type} with uuid {uuid} does not exist.")
