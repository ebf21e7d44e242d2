"""Staff pages: users, the entity tree, role assignments (grant and revoke as ``/api/role-assignments/`` does)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter
from litestar.response import Redirect, Template

from service.authz.models import RoleAssignment
from service.authz.schemas import RoleAssignmentCreate
from service.authz.services import RoleAssignmentService
from service.entities.services import EntityService
from service.errors import PermissionDenied, ValidationError
from service.runtime import provide_service
from service.security.principal import Principal
from service.text import NAME_PATTERN, PATTERN_MESSAGES, is_name
from service.ui.activity import PageNumber, page_count, window_of
from service.ui.forms import convert, expiry_from, field, messages, name_field
from service.ui.render import page
from service.ui.session import UI_PATH, Viewer
from service.users.services import UserService

Search = Annotated[str, Parameter(max_length=100, pattern=NAME_PATTERN)]
ASSIGNMENTS = f"{UI_PATH}/staff/assignments"
AssignmentUUID = Annotated[UUID, Parameter(description="The assignment's UUID.")]


def provide_staff(viewer: Viewer) -> Principal:
    """Dependency: the signed-in person, who must be staff (403 otherwise)."""
    if not viewer.is_staff:
        raise PermissionDenied
    return viewer


Staff = NamedDependency[Principal]
Users = NamedDependency[UserService]
Entities = NamedDependency[EntityService]
Assignments = NamedDependency[RoleAssignmentService]


def _grant_input(form: FormMultiDict, user_uuid: UUID | None) -> RoleAssignmentCreate:
    if user_uuid is None:
        raise ValidationError({"user": ["No user with that username."]})
    entity_type, _, entity_uuid = field(form, "scope").partition(":")
    raw: dict[str, Any] = {
        "user": str(user_uuid),
        "role": field(form, "role"),
        "scope": {"type": entity_type, "uuid": entity_uuid},
    }
    if field(form, "expires_on"):
        raw["expiration_time"] = expiry_from(field(form, "expires_on")).isoformat()
    return convert(raw, RoleAssignmentCreate)


class StaffPages(Controller):
    """``/ui/staff/…``: staff only."""

    path = "/staff"
    dependencies = {
        "staff": Provide(provide_staff, sync_to_thread=False),
        "users": provide_service(UserService),
        "entities": provide_service(EntityService),
        "assignments": provide_service(RoleAssignmentService),
    }

    @get("/users")
    async def users(self, users: Users, staff: Staff, q: Search = "", page_number: PageNumber = 1) -> Template:
        """Users, searched by username, name or email."""
        items, total = await users.search(q.strip(), window_of(page_number))
        return page("staff_users.html", staff, users=items, q=q, page_number=page_number, pages=page_count(total))

    @get("/entities")
    async def entities(self, entities: Entities, staff: Staff, q: Search = "") -> Template:
        """The entity tree, optionally only the branches leading to names containing ``q``."""
        return page("staff_entities.html", staff, tree=await entities.tree(q.strip()), q=q)

    async def _assignments_page(
        self,
        request: Request[Any, Any, Any],
        staff: Principal,
        users: UserService,
        entities: EntityService,
        assignments: RoleAssignmentService,
        *,
        errors: dict[str, list[str]] | None = None,
        status_code: int = 200,
    ) -> Template:
        params = request.query_params
        username, role = params.get("user", "").strip(), params.get("role", "").strip()
        if not is_name(username) or not is_name(role):
            raise ValidationError(PATTERN_MESSAGES[NAME_PATTERN])
        active = {"yes": True, "no": False}.get(params.get("active", ""))
        number = int(params["page"]) if params.get("page", "").isdigit() and int(params["page"]) > 0 else 1
        holder = await users.get_one_or_none(username=username) if username else None
        items: list[RoleAssignment] = []
        total = 0
        if holder is not None or not username:
            items, total = await assignments.listing(
                window_of(number), user=holder.uuid if holder else None, role=role or None, is_active=active
            )
        return page(
            "staff_assignments.html",
            staff,
            status_code=status_code,
            rows=await assignments.holders(items),
            roles=list(assignments.runtime.policy.roles.values()),
            tree=await entities.tree(),
            filters={"user": username, "role": role, "active": params.get("active", "")},
            page_number=number,
            pages=page_count(total),
            errors=errors or {},
        )

    @get("/assignments")
    async def assignments_list(
        self, request: Request[Any, Any, Any], staff: Staff, users: Users, entities: Entities, assignments: Assignments
    ) -> Template:
        """Role assignments (filter by username, role, active), and the grant form."""
        return await self._assignments_page(request, staff, users, entities, assignments)

    @post("/assignments")
    async def grant(
        self, request: Request[Any, Any, Any], staff: Staff, users: Users, entities: Entities, assignments: Assignments
    ) -> Template | Redirect:
        """Grant a role through the API's service; its errors are shown next to the fields."""
        form = await request.form()
        holder = await users.get_one_or_none(username=name_field(form, "username"))
        try:
            await assignments.grant(_grant_input(form, holder.uuid if holder else None), actor_id=staff.user_id)
        except ValidationError as exc:
            return await self._assignments_page(
                request, staff, users, entities, assignments, errors=messages(exc.errors), status_code=400
            )
        return Redirect(ASSIGNMENTS)

    @post("/assignments/{uuid:uuid}/revoke")
    async def revoke(self, staff: Staff, assignments: Assignments, uuid: AssignmentUUID) -> Redirect:
        """End an assignment now."""
        await assignments.revoke(await assignments.get_one(uuid=uuid), actor_id=staff.user_id)
        return Redirect(ASSIGNMENTS)
