"""Signing in with a username and password (the API's throttled login check) and signing out."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Redirect, Template

from service.auth_tokens.schemas import LoginRequest
from service.auth_tokens.services import BAD_CREDENTIALS, AuthTokenService
from service.errors import AuthenticationError, Throttled, ValidationError
from service.http import client_address
from service.runtime import provide_service
from service.ui.forms import convert, field
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

    dependencies = {"tokens": provide_service(AuthTokenService)}

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
        """Check the password as ``POST /api-auth/password/`` does (same limits, same throttle); start a session."""
        form = await request.form()
        username, target = field(form, "username"), safe_next(field(form, "next"))
        try:
            # no account has a name or password outside the API login's limits: bad credentials, unchecked, unaudited
            login = convert({"username": username, "password": str(form.get("password", ""))}, LoginRequest)
        except ValidationError:
            return self._refused(target, "", AuthenticationError.status_code, BAD_CREDENTIALS)
        try:
            user = await tokens.authenticate(login.username, login.password, client_address(request))
        except (AuthenticationError, Throttled) as exc:
            return self._refused(target, username, exc.status_code, str(exc.detail))
        start_session(request, user.id)
        return Redirect(target)

    @staticmethod
    def _refused(target: str, username: str, status_code: int, message: str) -> Template:
        return page(
            "sign_in.html",
            None,
            status_code=status_code,
            next=target,
            notice=None,
            errors={"password": [message]},
            username=username,
        )

    @post("/sign-out")
    async def sign_out(self, request: Request[Any, Any, Any], viewer: Viewer) -> Redirect:
        """End the page session (the cookie is cleared)."""
        request.clear_session()
        return Redirect(f"{UI_PATH}/sign-in")
