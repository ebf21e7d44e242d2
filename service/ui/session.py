"""Page sessions: an AES-GCM encrypted cookie keyed from the server secret, CSRF tokens, idle and absolute timeouts.

The session lives in the cookie, so every worker process reads it with the same key and no session table is needed.
Session and CSRF middleware are attached to the page router only: API requests never pay for them, and API clients
sending tokens are never asked for a CSRF token. A page session is never a credential of the API, and an
``Authorization`` header is never a page session (the page router skips token authentication altogether).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.exceptions import SerializationException
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.params import SkipValidation

from service.errors import ApplicationError
from service.runtime import RuntimeDependency
from service.security.client_ip import forwarded_over_tls
from service.security.principal import CredentialKind, Principal
from service.users.services import UserService

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send
    from sqlalchemy.ext.asyncio import AsyncSession

    from service.runtime import Runtime

UI_PATH = "/ui"
SESSION_COOKIE = "tokengate_session"
CSRF_COOKIE = "tokengate_csrf"
EXPIRED = "Your session has ended; please sign in again."


class SignInRequired(ApplicationError):
    """No valid page session: the page handlers answer with a redirect to the sign-in page."""

    status_code = 401
    default_detail = "Please sign in."


class _SessionBackend(ClientSideSessionBackend):
    """Litestar's encrypted-cookie backend, except that a mangled cookie is simply no session.

    Litestar reads the expiry from the cookie's unencrypted tail before checking the tag, and a malformed tail raises
    there instead of leaving the session empty (a 500 for any tampered cookie).
    """

    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        """The session in the cookie; empty when the cookie is absent, expired, forged or mangled."""
        try:
            return await super().load_from_connection(connection)
        except (SerializationException, ValueError, KeyError, TypeError):
            return {}


@dataclass
class _SessionConfig(CookieBackendConfig):
    _backend_class = _SessionBackend


class PageCookies:
    """Middleware factory: session and CSRF middleware, with ``Secure`` cookies when the request came over TLS.

    Litestar's cookie settings are fixed per middleware, so both stacks are built once and each request takes the
    one for its scheme: ``https`` directly or, from a proxy in ``security.trusted_proxies``, by its
    ``X-Forwarded-Proto`` (``tokengate run`` leaves uvicorn's own proxy headers off, so the scheme alone would
    never say TLS behind a proxy).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.stacks = [self._stack(runtime, secure) for secure in (False, True)]
        self.trusted_proxies = runtime.trusted_proxies

    def __deepcopy__(self, memo: dict[int, Any]) -> PageCookies:
        # Litestar deep-copies a router when registering it; the stacks are immutable and hold cipher objects
        return self

    @staticmethod
    def _stack(runtime: Runtime, secure: bool) -> list[DefineMiddleware]:
        keyring = runtime.keyring
        session = _SessionConfig(
            secret=keyring.session_key,
            key=SESSION_COOKIE,
            max_age=runtime.settings.ui.session_max_age_seconds,
            path=UI_PATH,
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        csrf = CSRFConfig(
            secret=keyring.csrf_key.hex(),
            cookie_name=CSRF_COOKIE,
            cookie_path=UI_PATH,
            cookie_secure=secure,
            cookie_httponly=True,
            cookie_samesite="strict",
        )
        return [session.middleware, DefineMiddleware(CSRFMiddleware, config=csrf)]

    def __call__(self, app: ASGIApp) -> ASGIApp:
        """Wrap one page route."""
        plain, tls = (self._wrap(app, stack) for stack in self.stacks)
        trusted_proxies = self.trusted_proxies

        async def choose(scope: Scope, receive: Receive, send: Send) -> None:
            over_tls = scope.get("scheme") == "https"
            if not over_tls:
                client = scope.get("client")
                proto = b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-proto")
                over_tls = forwarded_over_tls(client[0] if client else None, proto.decode("latin-1"), trusted_proxies)
            await (tls if over_tls else plain)(scope, receive, send)

        return choose

    @staticmethod
    def _wrap(app: ASGIApp, stack: list[DefineMiddleware]) -> ASGIApp:
        for middleware in reversed(stack):
            app = middleware(app)
        return app


def start_session(request: Request[Any, Any, Any], user_id: int) -> None:
    """Sign ``user_id`` in: a new session cookie replaces whatever the browser sent."""
    now = time.time()
    request.set_session({"uid": user_id, "started": now, "seen": now})


async def provide_viewer(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession], runtime: RuntimeDependency
) -> Principal:
    """Dependency: the signed-in person, with their full current rights; :class:`SignInRequired` otherwise.

    The user is read on every page, so a deactivated account is signed out at once; a session unused for
    ``ui.idle_timeout_seconds`` or older than ``ui.session_max_age_seconds`` ends.
    """
    session = request.session
    user_id, started, seen = session.get("uid"), session.get("started"), session.get("seen")
    if not isinstance(user_id, int) or not isinstance(started, float) or not isinstance(seen, float):
        raise SignInRequired
    limits = runtime.settings.ui
    now = time.time()
    if now - seen > limits.idle_timeout_seconds or now - started > limits.session_max_age_seconds:
        request.clear_session()
        raise SignInRequired(EXPIRED)
    user = await UserService(session=db_session, runtime=runtime).get_one_or_none(id=user_id)
    if user is None or not user.is_active:
        request.clear_session()
        raise SignInRequired(EXPIRED)
    session["seen"] = now
    return Principal(
        user_id=user.id,
        user_uuid=user.uuid,
        username=user.username,
        is_staff=user.is_staff,
        kind=CredentialKind.SESSION,
    )


Viewer = NamedDependency[SkipValidation[Principal]]
"""Handler parameter type for the signed-in person (the ``viewer`` dependency)."""
