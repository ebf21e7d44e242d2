"""``/api/role-assignments/`` (staff) and ``/api/authz/check/`` (any authenticated caller)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter
from litestar.types import Scope

from service.authz.models import RoleAssignment
from service.authz.schemas import (
    CheckRequest,
    CheckResult,
    IntrospectRequest,
    IntrospectResponse,
    RoleAssignmentCreate,
    RoleAssignmentRead,
    ScopeRead,
)
from service.authz.services import RoleAssignmentService, authorize
from service.http import STAFF_READ, WRITE, absolute_url, error_responses
from service.pagination import WindowDependency, list_route, paginated
from service.runtime import RuntimeDependency, provide_service
from service.security.client_ip import parse_ip
from service.security.guards import staff_only
from service.security.principal import CurrentPrincipal
from service.text import NAME_PATTERN

Assignments = NamedDependency[RoleAssignmentService]


async def _reads(
    request: Request[Any, Any, Any], service: RoleAssignmentService, items: list[RoleAssignment]
) -> list[RoleAssignmentRead]:
    return [
        RoleAssignmentRead(
            url=absolute_url(request, f"/api/role-assignments/{a.uuid}/"),
            uuid=a.uuid,
            user=user.uuid,
            user_username=user.username,
            role=a.role,
            scope=ScopeRead(type=entity.type, uuid=entity.uuid, name=entity.name),
            expiration_time=a.expiration_time,
            is_active=a.is_active,
            created=a.created_at,
        )
        for a, user, entity in await service.holders(items)
    ]


class RoleAssignmentController(Controller):
    """Staff grant and revoke roles."""

    path = "/api/role-assignments"
    tags = ["role-assignments"]
    guards = [staff_only]
    dependencies = {"assignments": provide_service(RoleAssignmentService)}

    @list_route("RoleAssignmentsList", STAFF_READ)
    async def list_assignments(
        self,
        request: Request[Any, Any, Any],
        assignments: Assignments,
        window: WindowDependency,
        user: Annotated[UUID | None, Parameter(description="Only this user's assignments.")] = None,
        role: Annotated[str | None, Parameter(max_length=100, pattern=NAME_PATTERN)] = None,
        is_active: Annotated[bool | None, Parameter(description="Only active (true) or revoked (false).")] = None,
    ) -> Response[list[RoleAssignmentRead]]:
        """Assignments, newest first."""
        items, total = await assignments.listing(window, user=user, role=role, is_active=is_active)
        return paginated(request, await _reads(request, assignments, list(items)), total, window)

    @post("/", operation_id="RoleAssignmentsCreate", responses=WRITE)
    async def grant(
        self,
        request: Request[Any, Any, Any],
        assignments: Assignments,
        principal: CurrentPrincipal,
        data: JSONBody[RoleAssignmentCreate],
    ) -> RoleAssignmentRead:
        """Grant a role on an entity; it takes effect on the next request."""
        assignment = await assignments.grant(data, actor_id=principal.user_id)
        return (await _reads(request, assignments, [assignment]))[0]

    @delete("/{uuid:uuid}/", operation_id="RoleAssignmentsDestroy", responses=STAFF_READ)
    async def revoke(
        self,
        assignments: Assignments,
        principal: CurrentPrincipal,
        uuid: Annotated[UUID, Parameter(description="The assignment's UUID.")],
    ) -> None:
        """Revoke an assignment; the next request made with the user's tokens no longer has it."""
        await assignments.revoke(await assignments.get_one(uuid=uuid), actor_id=principal.user_id)


class AuthzController(Controller):
    """Decisions for the caller's own credentials."""

    path = "/api/authz"
    tags = ["authz"]

    @post("/check/", operation_id="AuthzCheck", responses=error_responses(400, 401, 404, 413), status_code=200)
    async def check(self, scope: Scope, data: JSONBody[CheckRequest]) -> CheckResult:
        """May the credentials of this request use ``permission`` on ``entity``? With the reason either way."""
        # The hot path of every resource server: the runtime and caller are read off the ASGI scope rather than
        # injected (two dependency resolutions) or read through a Request (properties): about a tenth of its cost.
        # (``state["runtime"]``, not ``state.runtime``: attribute access goes through a failed lookup first.)
        policy = scope["litestar_app"].state["runtime"].policy
        decision = authorize(policy, scope["user"].subject, data.permission, data.entity)
        return CheckResult(allowed=decision.allowed, reason=decision.reason, clause=decision.clause)

    @post("/introspect/", operation_id="AuthzIntrospect", responses=WRITE, status_code=200, guards=[staff_only])
    async def introspect(self, runtime: RuntimeDependency, data: JSONBody[IntrospectRequest]) -> IntrospectResponse:
        """Is ``token`` active, whose is it, what may it do — and, if asked, may it use ``permission`` here?

        A token with a network allow-list is active only for a ``client_ip`` inside it. Usage is not recorded.
        """
        credential = await runtime.verifier.inspect(data.token, parse_ip(data.client_ip))
        if credential is None:
            return IntrospectResponse(active=False)
        principal, expiry = credential.principal, credential.stops_at()
        limits = principal.limits
        decision = None
        if data.permission is not None:
            verdict = authorize(runtime.policy, principal.subject, data.permission, data.entity)
            decision = CheckResult(allowed=verdict.allowed, reason=verdict.reason, clause=verdict.clause)
        return IntrospectResponse(
            active=True,
            token_type=principal.kind.value,
            username=principal.username,
            user_uuid=principal.user_uuid,
            is_staff=principal.is_staff,
            scope=" ".join(sorted(limits.scopes)) if limits else None,
            bindings=sorted(UUID(b.uuid) for b in limits.bindings) if limits else None,
            exp=int(expiry.timestamp()) if expiry else None,
            decision=decision,
        )
