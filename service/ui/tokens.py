"""My tokens: list, create (copy once), rotate (copy once), revoke, edit networks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Redirect, Template

from service.errors import ActionError, ValidationError
from service.pagination import Window
from service.pats.models import PersonalAccessToken
from service.pats.schemas import PatCreate
from service.pats.services import PatService, available_binding_targets, available_scopes
from service.runtime import provide_service
from service.security.principal import Principal
from service.text import NAME_PATTERN
from service.ui.forms import convert, expiry_bounds, expiry_from, field, lines, messages, name_field, values
from service.ui.render import page
from service.ui.session import UI_PATH, Viewer

Pats = NamedDependency[PatService]
TokenUUID = Annotated[UUID, Parameter(description="The token's UUID.")]
TOKENS = f"{UI_PATH}/tokens"
LIST_LIMIT = 100  # active tokens are at most ``tokens.pat_max_per_user``; of the others, the newest are listed
BINDING_CHOICES = 50
DEFAULT_LIFETIME_DAYS = 30


def token_state(token: PersonalAccessToken, now: datetime) -> str:
    """``active``, ``expired`` or ``revoked`` (a rotated-out token counts as revoked)."""
    if token.expires_at <= now:
        return "expired"
    return "active" if token.is_active else "revoked"


def _create_input(form: FormMultiDict) -> PatCreate:
    """The create form as the API's input (``allowed_scopes`` values are ``type:uuid``)."""
    bindings = []
    for value in values(form, "allowed_scopes"):
        entity_type, _, uuid = value.partition(":")
        bindings.append({"type": entity_type, "uuid": uuid})
    raw = {
        "name": field(form, "name"),
        "scopes": values(form, "scopes"),
        "expires_at": expiry_from(field(form, "expires_on")).isoformat(),
        "allowed_scopes": bindings,
        "allowed_networks": lines(field(form, "allowed_networks")),
    }
    return convert(raw, PatCreate)


class TokenPages(Controller):
    """``/ui/tokens``: the signed-in person's own Personal Access Tokens."""

    path = "/tokens"
    dependencies = {"pats": provide_service(PatService)}

    @get("/")
    async def list_tokens(self, pats: Pats, viewer: Viewer) -> Template:
        """Active tokens first; expired and revoked ones apart (the newest of them)."""
        window = Window(limit=LIST_LIMIT, offset=0, by_page=True)
        active, _ = await pats.listing(window, owner_id=viewer.user_id, active=True)
        inactive, total = await pats.listing(window, owner_id=viewer.user_id, active=False)
        bindings = await pats.bindings_out([*active, *inactive])
        now = datetime.now(UTC)
        groups: dict[str, list[tuple[PersonalAccessToken, Any]]] = {"active": [], "expired": [], "revoked": []}
        for token in [*active, *inactive]:
            groups[token_state(token, now)].append((token, bindings[token.id]))
        return page("tokens.html", viewer, groups=groups, inactive_total=total, inactive_shown=len(inactive))

    async def _form(
        self,
        pats: PatService,
        viewer: Principal,
        search: str,
        *,
        errors: dict[str, list[str]] | None = None,
        sent: FormMultiDict | None = None,
        status_code: int = 200,
    ) -> Template:
        runtime = pats.runtime
        first, last = expiry_bounds(runtime.settings.tokens.pat_max_lifetime_days)
        default = min(last, first + timedelta(days=DEFAULT_LIFETIME_DAYS - 1))
        return page(
            "token_new.html",
            viewer,
            status_code=status_code,
            scopes=available_scopes(runtime.policy, viewer),
            targets=available_binding_targets(runtime.policy, viewer),
            entities=await pats.bindable_entities(viewer, search, BINDING_CHOICES),
            search=search,
            first_day=first,
            last_day=last,
            max_days=runtime.settings.tokens.pat_max_lifetime_days,
            errors=errors or {},
            name=field(sent, "name") if sent else "",
            chosen_scopes=set(values(sent, "scopes")) if sent else set(),
            chosen_bindings=set(values(sent, "allowed_scopes")) if sent else set(),
            expires_on=field(sent, "expires_on") if sent else default.isoformat(),
            networks=field(sent, "allowed_networks") if sent else "",
        )

    @get("/new")
    async def new_form(
        self, pats: Pats, viewer: Viewer, q: Annotated[str, Parameter(max_length=100, pattern=NAME_PATTERN)] = ""
    ) -> Template:
        """The create form; ``q`` narrows the entities offered for binding by name."""
        return await self._form(pats, viewer, q.strip())

    @post("/new")
    async def create(self, request: Request[Any, Any, Any], pats: Pats, viewer: Viewer) -> Template:
        """Create the token through the API's service and show it once."""
        form = await request.form()
        try:
            token, plaintext = await pats.issue(await pats.owner(viewer), _create_input(form))
        except ValidationError as exc:
            search = name_field(form, "q")
            return await self._form(pats, viewer, search, errors=messages(exc.errors), sent=form, status_code=400)
        return page("token_created.html", viewer, status_code=201, token=token, plaintext=plaintext, rotated=False)

    async def _about(self, pats: PatService, viewer: Principal, uuid: UUID, template: str) -> Template:
        token = await pats.visible(viewer, uuid, staff_view=False)
        return page(template, viewer, token=token, errors={}, networks="\n".join(token.allowed_networks))

    @get("/{uuid:uuid}/revoke")
    async def revoke_form(self, pats: Pats, viewer: Viewer, uuid: TokenUUID) -> Template:
        """Ask before revoking."""
        return await self._about(pats, viewer, uuid, "token_revoke.html")

    @get("/{uuid:uuid}/rotate")
    async def rotate_form(self, pats: Pats, viewer: Viewer, uuid: TokenUUID) -> Template:
        """Ask before rotating."""
        return await self._about(pats, viewer, uuid, "token_rotate.html")

    @get("/{uuid:uuid}/networks")
    async def networks_form(self, pats: Pats, viewer: Viewer, uuid: TokenUUID) -> Template:
        """The network allow-list form."""
        return await self._about(pats, viewer, uuid, "token_networks.html")

    @post("/{uuid:uuid}/revoke")
    async def revoke(self, pats: Pats, viewer: Viewer, uuid: TokenUUID) -> Redirect:
        """Revoke the token: it stops working at once and is listed as revoked."""
        await pats.revoke(await pats.visible(viewer, uuid, staff_view=False), viewer)
        return Redirect(TOKENS)

    @post("/{uuid:uuid}/rotate")
    async def rotate(self, pats: Pats, viewer: Viewer, uuid: TokenUUID) -> Template:
        """Replace the token by a new one with the same settings, shown once."""
        token = await pats.visible(viewer, uuid, staff_view=False)
        successor, plaintext = await pats.rotate(token, await pats.owner(viewer))
        grace = pats.runtime.settings.tokens.rotation_grace_seconds
        return page(
            "token_created.html",
            viewer,
            status_code=201,
            token=successor,
            plaintext=plaintext,
            rotated=True,
            grace=grace,
        )

    @post("/{uuid:uuid}/networks")
    async def set_networks(
        self, request: Request[Any, Any, Any], pats: Pats, viewer: Viewer, uuid: TokenUUID
    ) -> Template | Redirect:
        """Replace the token's network allow-list (empty: any network)."""
        form = await request.form()
        token = await pats.visible(viewer, uuid, staff_view=False)
        try:
            await pats.set_network_acl(token, lines(field(form, "allowed_networks")))
        except (ValidationError, ActionError) as exc:
            errors = messages(exc.errors) if isinstance(exc, ValidationError) else {"allowed_networks": [exc.detail]}
            return page(
                "token_networks.html",
                viewer,
                status_code=400,
                token=token,
                errors=errors,
                networks=field(form, "allowed_networks"),
            )
        return Redirect(TOKENS)
