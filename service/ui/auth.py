"""Signing in with a username and password (the API's throttled login check) and signing out."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter
from litestar.response import Redirect, Template

from service.auth_tokens.services import AuthTokenService
from service.errors import AuthenticationError, Throttled
from service.http import client_address
from service.runtime import service_provider
from service.ui.forms import field
from service.ui.render import page
from service.ui.session import UI_PATH, Viewer, start_session

HOME = f"{UI_PATH}/tokens"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a page of this site only (never another host, never out of the pages).

    No ``.`` or ``..`` path segment either, percent-encoded or not: a browser resolves ``/ui/..//x`` to path ``//x``.
    """
    if not target or not target.startswith(f"{UI_PATH}/") or target.startswith("//") or "\\" in target:
        return HOME
    segments = unquote(target.split("?", 1)[0].split("#", 1)[0]).split("/")
    return HOME if "." in segments or ".." in segments else target


class SignInPages(Controller):
    """``/ui/sign-in`` and ``/ui/sign-out``."""

    dependencies = {"tokens": Provide(service_provider(AuthTokenService))}

    @get("/")
    async def home(self) -> Redirect:
        """The landing page is the token list."""
        return Redirect(HOME)

    @get("/sign-in")
    async def sign_in_form(
        self,
        next: Annotated[str | None, Parameter(max_length=500, description="The page to go to after.")] = None,
        ended: Annotated[bool, Parameter(description="Whether a session just ended.")] = False,
    ) -> Template:
        """The sign-in form."""
        notice = "Your session has ended; please sign in again." if ended else None
        return page("sign_in.html", None, next=safe_next(next), notice=notice, errors={}, username="")

    @post("/sign-in")
    async def sign_in(
        self, request: Request[Any, Any, Any], tokens: NamedDependency[AuthTokenService]
    ) -> Template | Redirect:
        """Check the password as ``POST /api-auth/password/`` does (same throttle); start a page session."""
        form = await request.form()
        username, target = field(form, "username"), safe_next(field(form, "next"))
        try:
            user = await tokens.authenticate(username, str(form.get("password", "")), client_address(request))
        except (AuthenticationError, Throttled) as exc:
            return page(
                "sign_in.html",
                None,
                status_code=exc.status_code,
                next=target,
                notice=None,
                errors={"password": [str(exc.detail)]},
                username=username,
            )
        await tokens.repository.session.commit()  # the sign-in's event and last_login; a redirect does not autocommit
        start_session(request, user.id)
        return Redirect(target)

    @post("/sign-out")
    async def sign_out(self, request: Request[Any, Any, Any], viewer: Viewer) -> Redirect:
        """End the page session (the cookie is cleared)."""
        request.clear_session()
        return Redirect(f"{UI_PATH}/sign-in")
