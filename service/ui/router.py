"""The ``/ui`` router: page controllers, their session and CSRF middleware, static assets, HTML error pages."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from service.errors import ApplicationError, ValidationError
from service.runtime import Runtime
from service.security.middleware import SKIP_AUTH
from service.ui.activity import ActivityPages
from service.ui.auth import SignInPages
from service.ui.policy import PolicyPages
from service.ui.render import page
from service.ui.session import EXPIRED, UI_PATH, PageCookies, SignInRequired, provide_viewer
from service.ui.staff import StaffPages
from service.ui.tokens import TokenPages

HERE = Path(__file__).parent
logger = logging.getLogger("tokengate.ui")

# Every asset is served from here: no inline script or style, nothing from another origin, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PAGE_HEADERS = [ResponseHeader(name=name, value=value) for name, value in SECURITY_HEADERS.items()]
PAGE_CACHE_CONTROL = CacheControlHeader(no_store=True)
# Litestar adds a router's headers to what its handlers return, not to what its exception handler returns
ERROR_HEADERS = {**SECURITY_HEADERS, "Cache-Control": PAGE_CACHE_CONTROL.to_header()}


def page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on pages: sign-in redirects, and HTML error pages with the API's message (never a traceback)."""
    if isinstance(exc, SignInRequired):
        target = f"{UI_PATH}/sign-in?next={quote(request.url.path)}"
        return Redirect(target + ("&ended=true" if exc.detail == EXPIRED else ""), headers=ERROR_HEADERS)
    if isinstance(exc, ApplicationError):
        status, detail = exc.status_code, exc.errors if isinstance(exc, ValidationError) else exc.detail
    elif isinstance(exc, HTTPException):
        status, detail = exc.status_code, exc.detail
    else:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        status, detail = 500, "Server error."
    if status == 403 and detail == "CSRF token verification failed":
        detail = "This form was not sent from a page of this site, or it is too old. Reload the page and try again."
    response = page("error.html", None, status_code=status, status=status, detail=detail)
    response.headers.update(ERROR_HEADERS)
    return response


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja templates of the pages (autoescaped)."""
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


def ui_router(runtime: Runtime) -> Router:
    """Everything under ``/ui``; token authentication is skipped here: only a page session signs a person in."""
    assets = create_static_files_router(
        path="/static",
        directories=[HERE / "static"],
        opt={SKIP_AUTH: True},
        include_in_schema=False,
        cache_control=CacheControlHeader(max_age=3600),
    )
    return Router(
        UI_PATH,
        route_handlers=[SignInPages, TokenPages, ActivityPages, StaffPages, PolicyPages, assets],
        dependencies={"viewer": Provide(provide_viewer)},
        middleware=[PageCookies(runtime)],
        exception_handlers={Exception: page_error},
        response_headers=PAGE_HEADERS,
        cache_control=PAGE_CACHE_CONTROL,
        opt={SKIP_AUTH: True},
        include_in_schema=False,
    )
