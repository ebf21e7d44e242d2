"""The OpenAPI page at ``/schema``: Swagger UI (it renders OpenAPI 3.1), its files served by the app itself.

The files come from the pinned ``swagger-ui-bundle-v2`` package, so the page works without network access: no
CDN, no external font or favicon.
"""

from __future__ import annotations

from litestar.datastructures import ResponseHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from service.security.middleware import SKIP_AUTH

ASSETS_PATH = "/schema/assets"
# Swagger UI starts from an inline script holding the schema, and styles some elements inline; everything else
# comes from this origin. The page shows no input of anyone's, and it may not be framed nor talk to other origins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def schema_router() -> Router:
    """``/schema`` and its pages: public (the schema documents every route), under :data:`CONTENT_SECURITY_POLICY`."""
    return Router(
        "/schema",
        route_handlers=[],
        include_in_schema=False,
        opt={SKIP_AUTH: True},
        response_headers=[
            ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
            ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
        ],
    )


def swagger_ui() -> SwaggerRenderPlugin:
    """The one renderer, at ``/schema`` (and ``/schema/swagger``), loading its files from :data:`ASSETS_PATH`."""
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        path=["/", "/swagger"],
    )


def swagger_ui_assets() -> Router:
    """Serves Swagger UI's files (public, like the schema)."""
    return create_static_files_router(
        path=ASSETS_PATH, directories=[swagger_ui_path], opt={SKIP_AUTH: True}, include_in_schema=False
    )
