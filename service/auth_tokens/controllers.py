"""Legacy token endpoints: login, *Auth Tokens* and *Get All Auth Tokens* (``/api/users/auth_tokens``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from service.auth_tokens.models import AuthToken
from service.auth_tokens.schemas import (
    AdminAuthTokenRead,
    AuthTokenRead,
    LoginRequest,
    LoginResponse,
    TokenUserData,
)
from service.auth_tokens.services import AdminTokenQuery, AuthTokenService, TokenOrdering
from service.http import (
    NO_STORE,
    STAFF_READ,
    PublicOperation,
    absolute_url,
    client_address,
    error_responses,
    user_url,
)
from service.pagination import WindowDependency, list_route, paginated, provide_limit_offset
from service.runtime import provide_service
from service.security.guards import no_pat, staff_only
from service.security.middleware import SKIP_AUTH
from service.text import NAME_PATTERN

provide_tokens = provide_service(AuthTokenService)
Tokens = NamedDependency[AuthTokenService]
UserId = Annotated[int, Parameter(ge=1, le=2**63 - 1, description="Integer id of the token's user.")]


class LoginController(Controller):
    """Password login."""

    path = "/api-auth"
    tags = ["auth"]
    dependencies = {"tokens": provide_tokens}

    @post(
        "/password/",
        operation_id="ApiAuthPassword",
        responses=error_responses(400, 401, 413, 429),
        opt={SKIP_AUTH: True},
        status_code=200,
        security=[],
        operation_class=PublicOperation,
    )
    async def login(
        self, request: Request[Any, Any, Any], data: JSONBody[LoginRequest], tokens: Tokens
    ) -> Response[LoginResponse]:
        """Exchange a username and password for the user's API token (the same one while it is valid)."""
        key = await tokens.login(data.username, data.password, client_address(request))
        return Response(LoginResponse(token=key), headers=NO_STORE)


def _auth_token_read(request: Request[Any, Any, Any], token: AuthToken) -> AuthTokenRead:
    user = token.user
    return AuthTokenRead(
        url=absolute_url(request, f"/api/auth-tokens/{user.id}/"),
        created=token.created_at,
        user=user_url(request, user.uuid),
        user_first_name=user.first_name,
        user_last_name=user.last_name,
        user_username=user.username,
        user_is_active=user.is_active,
        user_token_lifetime=user.token_lifetime,
    )


class AuthTokenController(Controller):
    """*Auth Tokens*: staff view of users' unexpired tokens."""

    path = "/api/auth-tokens"
    tags = ["auth-tokens"]
    guards = [staff_only]
    dependencies = {"tokens": provide_tokens}

    @list_route("AuthTokensList", STAFF_READ)
    async def list_tokens(
        self, request: Request[Any, Any, Any], tokens: Tokens, window: WindowDependency
    ) -> Response[list[AuthTokenRead]]:
        """List unexpired tokens (``HEAD`` for the count only)."""
        items, total = await tokens.list_active(window)
        return paginated(request, [_auth_token_read(request, token) for token in items], total, window)

    @get("/{user_id:int}/", operation_id="AuthTokensRetrieve", responses=STAFF_READ)
    async def retrieve(self, request: Request[Any, Any, Any], tokens: Tokens, user_id: UserId) -> AuthTokenRead:
        """A user's token."""
        return _auth_token_read(request, await tokens.get_active_for_user(user_id))

    @delete("/{user_id:int}/", operation_id="AuthTokensDestroy", responses=STAFF_READ, guards=[no_pat])
    async def destroy(self, tokens: Tokens, user_id: UserId) -> None:
        """Delete a user's token: they are logged out everywhere."""
        await tokens.delete_token(await tokens.get_active_for_user(user_id))


def _admin_read(token: AuthToken) -> AdminAuthTokenRead:
    user = token.user
    return AdminAuthTokenRead(
        id=token.id,
        key=token.key_prefix,
        user_data=TokenUserData(id=user.id, username=user.username, full_name=user.full_name),
        created_at=token.created_at,
        updated_at=token.updated_at,
    )


DateParam = Annotated[date | None, Parameter(description="A date, YYYY-MM-DD.")]
IdBound = Annotated[int | None, Parameter(ge=0, le=2**63 - 1)]


def provide_admin_query(
    search: Annotated[
        str | None,
        Parameter(
            max_length=200,
            pattern=NAME_PATTERN,
            description="Id, key prefix or full key, username, mobile number, first or last name.",
        ),
    ] = None,
    ordering: Annotated[TokenOrdering | None, Parameter(description="Sort key; prefix - for descending.")] = None,
    id_min: IdBound = None,
    id_max: IdBound = None,
    created_date: DateParam = None,
    updated_date: DateParam = None,
    created_from: DateParam = None,
    created_to: DateParam = None,
    updated_from: DateParam = None,
    updated_to: DateParam = None,
) -> AdminTokenQuery:
    """Dependency: the filters of *Get All Auth Tokens*."""
    return AdminTokenQuery(
        search=search,
        ordering=ordering,
        id_min=id_min,
        id_max=id_max,
        created_date=created_date,
        updated_date=updated_date,
        created_from=created_from,
        created_to=created_to,
        updated_from=updated_from,
        updated_to=updated_to,
    )


class AdminAuthTokenController(Controller):
    """*Get All Auth Tokens*: the admin listing of every legacy token, with search and filters, and regeneration."""

    path = "/api/users/auth_tokens"
    tags = ["auth-tokens"]
    guards = [staff_only]
    dependencies = {"tokens": provide_tokens, "filters": Provide(provide_admin_query, sync_to_thread=False)}

    @list_route("UsersAuthTokensList", STAFF_READ, window=provide_limit_offset)
    async def list_tokens(
        self,
        request: Request[Any, Any, Any],
        tokens: Tokens,
        window: WindowDependency,
        filters: NamedDependency[AdminTokenQuery],
    ) -> Response[list[AdminAuthTokenRead]]:
        """Every token; ``key`` shows the display prefix only."""
        items, total = await tokens.list_for_admin(filters, window)
        return paginated(request, [_admin_read(token) for token in items], total, window)

    @post(
        "/{token_id:int}/regenerate",
        operation_id="UsersAuthTokensRegenerate",
        responses=STAFF_READ,
        status_code=200,
        guards=[no_pat],
    )
    async def regenerate(
        self, tokens: Tokens, token_id: Annotated[int, Parameter(ge=1, le=2**63 - 1)]
    ) -> Response[AdminAuthTokenRead]:
        """Replace the token's key (same id); the owner gets the new key at their next login."""
        token = await tokens.regenerate(await tokens.get(token_id))
        return Response(_admin_read(token), headers=NO_STORE)
