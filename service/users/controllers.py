"""User management: staff manage everyone; a user may read themself."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from service.errors import NotFound
from service.http import READ, STAFF_READ, WRITE, user_url
from service.pagination import WindowDependency, list_route, paginated
from service.runtime import provide_service
from service.security.guards import is_staff_request, refuse_pat, staff_only
from service.security.principal import CurrentPrincipal
from service.text import NAME_PATTERN
from service.users.models import User
from service.users.schemas import UserCreate, UserRead, UserUpdate
from service.users.services import UserService

Users = NamedDependency[UserService]
UserUUID = Annotated[UUID, Parameter(description="The user's UUID.")]


def user_read(request: Request[Any, Any, Any], user: User) -> UserRead:
    """The API shape of ``user``."""
    return UserRead(
        url=user_url(request, user.uuid),
        uuid=user.uuid,
        id=user.id,
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        full_name=user.full_name,
        email=user.email,
        mobile_number=user.mobile_number,
        is_active=user.is_active,
        is_staff=user.is_staff,
        token_lifetime=user.token_lifetime,
        can_use_personal_access_tokens=user.can_use_personal_access_tokens,
        date_joined=user.created_at,
        last_login=user.last_login,
    )


class UserController(Controller):
    """``/api/users/``."""

    path = "/api/users"
    tags = ["users"]
    dependencies = {"users": provide_service(UserService)}

    @list_route("UsersList", STAFF_READ, guards=[staff_only])
    async def list_users(
        self,
        request: Request[Any, Any, Any],
        users: Users,
        window: WindowDependency,
        username: Annotated[str | None, Parameter(max_length=128, pattern=NAME_PATTERN)] = None,
    ) -> Response[list[UserRead]]:
        """Users ordered by id; ``username`` filters by exact name."""
        items, total = await users.listing(window, username=username)
        return paginated(request, [user_read(request, user) for user in items], total, window)

    @post("/", operation_id="UsersCreate", responses=WRITE, guards=[staff_only])
    async def create_user(
        self, request: Request[Any, Any, Any], users: Users, data: JSONBody[UserCreate], principal: CurrentPrincipal
    ) -> UserRead:
        """Create a user (staff); one with a password only with a password login's token (never a PAT)."""
        if data.password is not None:
            refuse_pat(principal)
        return user_read(request, await users.create_user(data, actor_id=principal.user_id))

    @get("/{uuid:uuid}/", operation_id="UsersRetrieve", responses=READ)
    async def retrieve(
        self, request: Request[Any, Any, Any], users: Users, principal: CurrentPrincipal, uuid: UserUUID
    ) -> UserRead:
        """A user: staff see anyone, others only themselves (404 otherwise)."""
        if not is_staff_request(principal) and uuid != principal.user_uuid:
            raise NotFound
        return user_read(request, await users.get_one(uuid=uuid))

    @patch("/{uuid:uuid}/", operation_id="UsersPartialUpdate", responses=WRITE, guards=[staff_only])
    async def update(
        self,
        request: Request[Any, Any, Any],
        users: Users,
        principal: CurrentPrincipal,
        uuid: UserUUID,
        data: JSONBody[UserUpdate],
    ) -> UserRead:
        """Change a user (staff); deactivation revokes all of the user's tokens. No PAT may set a password."""
        if data.password is not msgspec.UNSET:
            refuse_pat(principal)
        user = await users.get_one(uuid=uuid)
        return user_read(request, await users.update_user(user, data, actor_id=principal.user_id))
