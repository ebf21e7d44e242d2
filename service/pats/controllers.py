"""``/api/personal-access-tokens/`` (Waldur's *Personal Access Tokens* API) plus ``set_network_acl``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post, route
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from service.http import LIST_METHODS, NO_STORE, READ, WRITE, list_operation_id
from service.pagination import Window, paginated, provide_page
from service.pats.models import PersonalAccessToken
from service.pats.schemas import (
    AllowedScopeOut,
    AvailableScope,
    BindingTarget,
    NetworkAclUpdate,
    PatCreate,
    PatCreated,
    PatRead,
)
from service.pats.services import PatService, available_binding_targets, available_scopes
from service.runtime import RuntimeDependency, service_provider
from service.security.guards import is_staff_request, no_pat
from service.security.principal import CurrentPrincipal

Pats = NamedDependency[PatService]
PatUUID = Annotated[UUID, Parameter(description="The token's UUID.")]
Page = NamedDependency[Window]


def pat_read(token: PersonalAccessToken, bindings: list[AllowedScopeOut]) -> PatRead:
    """The list/retrieve shape (no secret)."""
    return PatRead(
        uuid=token.uuid,
        name=token.name,
        token_prefix=token.token_prefix,
        scopes=list(token.scopes),
        allowed_scopes=bindings,
        allowed_networks=list(token.allowed_networks),
        expires_at=token.expires_at,
        is_active=token.is_active,
        last_used_at=token.last_used_at,
        last_used_ip=token.last_used_ip,
        use_count=token.use_count,
        created=token.created_at,
    )


async def created_response(pats: PatService, token: PersonalAccessToken, plaintext: str) -> Response[PatCreated]:
    """201 with the plaintext token, never cached."""
    bindings = (await pats.bindings_out([token]))[token.id]
    body = PatCreated(
        uuid=token.uuid,
        name=token.name,
        token=plaintext,
        scopes=list(token.scopes),
        allowed_scopes=bindings,
        allowed_networks=list(token.allowed_networks),
        expires_at=token.expires_at,
        created=token.created_at,
    )
    return Response(body, status_code=201, headers=NO_STORE)


class PersonalAccessTokenController(Controller):
    """Owners manage their tokens; staff may list, read and revoke anyone's.

    A PAT cannot manage PATs, except to read and revoke itself (``/self/``).
    """

    path = "/api/personal-access-tokens"
    tags = ["personal-access-tokens"]
    dependencies = {
        "pats": Provide(service_provider(PatService)),
        "window": Provide(provide_page, sync_to_thread=False),
    }

    @route("/", http_method=LIST_METHODS, operation_id=list_operation_id("PersonalAccessTokensList"), responses=READ)
    async def list_tokens(
        self,
        request: Request[Any, Any, Any],
        pats: Pats,
        principal: CurrentPrincipal,
        window: Page,
        user: Annotated[UUID | None, Parameter(description="Staff: only this user's tokens.")] = None,
    ) -> Response[list[PatRead]]:
        """Own tokens, newest first (staff: everyone's, or one user's with ``?user=``)."""
        if is_staff_request(principal):
            items, total = await pats.listing(window, owner_uuid=user)
        else:
            items, total = await pats.listing(window, owner_id=principal.user_id)
        bindings = await pats.bindings_out(list(items))
        return paginated(request, [pat_read(t, bindings[t.id]) for t in items], total, window)

    @post("/", operation_id="PersonalAccessTokensCreate", responses=WRITE, guards=[no_pat])
    async def create(self, pats: Pats, principal: CurrentPrincipal, data: JSONBody[PatCreate]) -> Response[PatCreated]:
        """Create a token; the plaintext is in this response only."""
        token, plaintext = await pats.issue(await pats.owner(principal), data)
        return await created_response(pats, token, plaintext)

    @route(
        "/available_scopes/",
        http_method=LIST_METHODS,
        operation_id=list_operation_id("PersonalAccessTokensAvailableScopesList"),
        responses=READ,
    )
    async def available_scopes(
        self, request: Request[Any, Any, Any], runtime: RuntimeDependency, principal: CurrentPrincipal, window: Page
    ) -> Response[list[AvailableScope]]:
        """Permissions the caller may put in a token now, from the policy and their live roles."""
        items = available_scopes(runtime.policy, principal)
        return paginated(request, items[window.offset : window.offset + window.limit], len(items), window)

    @route(
        "/available_binding_targets/",
        http_method=LIST_METHODS,
        operation_id=list_operation_id("PersonalAccessTokensAvailableBindingTargetsList"),
        responses=READ,
    )
    async def available_binding_targets(
        self, request: Request[Any, Any, Any], runtime: RuntimeDependency, principal: CurrentPrincipal, window: Page
    ) -> Response[list[BindingTarget]]:
        """For each permission, the entity types the caller may bind a token to (staff: every bindable type)."""
        items = available_binding_targets(runtime.policy, principal)
        return paginated(request, items[window.offset : window.offset + window.limit], len(items), window)

    @get("/self/", operation_id="PersonalAccessTokensSelfRetrieve", responses=READ)
    async def retrieve_self(self, pats: Pats, principal: CurrentPrincipal) -> PatRead:
        """The PAT presenting this request (no secret); 404 for any other credential."""
        token = await pats.presenting(principal)
        return pat_read(token, (await pats.bindings_out([token]))[token.id])

    @delete("/self/", operation_id="PersonalAccessTokensSelfDestroy", responses=READ)
    async def revoke_self(self, pats: Pats, principal: CurrentPrincipal) -> None:
        """Revoke the PAT presenting this request: a token may always give up its own power."""
        await pats.revoke(await pats.presenting(principal), principal)

    @get("/{uuid:uuid}/", operation_id="PersonalAccessTokensRetrieve", responses=READ)
    async def retrieve(self, pats: Pats, principal: CurrentPrincipal, uuid: PatUUID) -> PatRead:
        """One token (owner or staff)."""
        token = await pats.visible(principal, uuid, staff_view=is_staff_request(principal))
        return pat_read(token, (await pats.bindings_out([token]))[token.id])

    @delete("/{uuid:uuid}/", operation_id="PersonalAccessTokensDestroy", responses=WRITE, guards=[no_pat])
    async def revoke(self, pats: Pats, principal: CurrentPrincipal, uuid: PatUUID) -> None:
        """Revoke a token (owner or staff): it stays listed with ``is_active: false``."""
        await pats.revoke(await pats.visible(principal, uuid, staff_view=is_staff_request(principal)), principal)

    @post("/{uuid:uuid}/rotate/", operation_id="PersonalAccessTokensRotate", responses=WRITE, guards=[no_pat])
    async def rotate(self, pats: Pats, principal: CurrentPrincipal, uuid: PatUUID) -> Response[PatCreated]:
        """Atomically revoke the token and issue its successor with the same settings."""
        token = await pats.visible(principal, uuid, staff_view=False)
        successor, plaintext = await pats.rotate(token, await pats.owner(principal))
        return await created_response(pats, successor, plaintext)

    @post(
        "/{uuid:uuid}/set_network_acl/",
        operation_id="PersonalAccessTokensSetNetworkAcl",
        responses=WRITE,
        guards=[no_pat],
        status_code=200,
    )
    async def set_network_acl(
        self, pats: Pats, principal: CurrentPrincipal, uuid: PatUUID, data: JSONBody[NetworkAclUpdate]
    ) -> PatRead:
        """Replace the token's network allow-list (``[]``: unrestricted)."""
        token = await pats.set_network_acl(await pats.visible(principal, uuid, staff_view=False), data.allowed_networks)
        return pat_read(token, (await pats.bindings_out([token]))[token.id])
