"""``/api/personal-access-tokens/`` (Waldur's *Personal Access Tokens* API) plus ``set_network_acl``."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from service.http import NO_STORE, READ, WRITE
from service.pagination import WindowDependency, list_route, paginated, paginated_list
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
from service.runtime import RuntimeDependency, provide_service
from service.security.guards import is_staff_request, no_pat
from service.security.principal import CurrentPrincipal, Principal
from service.security.verifier import CachedCredential

Pats = NamedDependency[PatService]
PatUUID = Annotated[UUID, Parameter(description="The token's UUID.")]


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


async def one_pat_read(pats: PatService, token: PersonalAccessToken) -> PatRead:
    """The list/retrieve shape of a single token."""
    return pat_read(token, (await pats.bindings_out([token]))[token.id])


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
    dependencies = {"pats": provide_service(PatService)}

    @list_route("PersonalAccessTokensList", READ)
    async def list_tokens(
        self,
        request: Request[Any, Any, Any],
        pats: Pats,
        principal: CurrentPrincipal,
        window: WindowDependency,
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

    @list_route("PersonalAccessTokensAvailableScopesList", READ, path="/available_scopes/")
    async def available_scopes(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDependency,
        principal: CurrentPrincipal,
        window: WindowDependency,
    ) -> Response[list[AvailableScope]]:
        """Permissions the caller may put in a token now, from the policy and their live roles."""
        return paginated_list(request, available_scopes(runtime.policy, principal), window)

    @list_route("PersonalAccessTokensAvailableBindingTargetsList", READ, path="/available_binding_targets/")
    async def available_binding_targets(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDependency,
        principal: CurrentPrincipal,
        window: WindowDependency,
    ) -> Response[list[BindingTarget]]:
        """For each permission, the entity types the caller may bind a token to (staff: every bindable type)."""
        return paginated_list(request, available_binding_targets(runtime.policy, principal), window)

    @get("/self/", operation_id="PersonalAccessTokensSelfRetrieve", responses=READ)
    async def retrieve_self(self, pats: Pats, request: Request[Principal, CachedCredential, Any]) -> PatRead:
        """The PAT presenting this request (no secret); 404 for any other credential."""
        return await one_pat_read(pats, await pats.presenting(request.auth))

    @delete("/self/", operation_id="PersonalAccessTokensSelfDestroy", responses=READ)
    async def revoke_self(
        self, pats: Pats, principal: CurrentPrincipal, request: Request[Principal, CachedCredential, Any]
    ) -> None:
        """Revoke the PAT presenting this request: a token may always give up its own power."""
        await pats.revoke(await pats.presenting(request.auth), principal)

    @get("/{uuid:uuid}/", operation_id="PersonalAccessTokensRetrieve", responses=READ)
    async def retrieve(self, pats: Pats, principal: CurrentPrincipal, uuid: PatUUID) -> PatRead:
        """One token (owner or staff)."""
        return await one_pat_read(pats, await pats.visible(principal, uuid, staff_view=is_staff_request(principal)))

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
        return await one_pat_read(pats, token)
