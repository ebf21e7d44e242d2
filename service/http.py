"""Small HTTP helpers shared by controllers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from litestar import HttpMethod, Request

LIST_METHODS = [HttpMethod.GET, HttpMethod.HEAD]
NO_STORE = {"Cache-Control": "no-store"}


def absolute_url(request: Request[Any, Any, Any], path: str) -> str:
    """``path`` on the host the request came to."""
    return str(request.base_url).rstrip("/") + path


def user_url(request: Request[Any, Any, Any], user_uuid: UUID) -> str:
    """The API address of a user (Waldur renders UUIDs as hex in URLs)."""
    return absolute_url(request, f"/api/users/{user_uuid.hex}/")


def client_address(request: Request[Any, Any, Any]) -> str:
    """The client address the authentication middleware resolved, or the peer's."""
    ip = request.scope["state"].get("client_ip")
    if ip is not None:
        return str(ip)
    return request.client.host if request.client else "unknown"


def list_operation_id(name: str) -> Callable[..., str]:
    """Operation ids for a GET+HEAD list route: ``name`` for GET, ``nameCount`` for HEAD."""

    def operation_id(_handler: Any, http_method: str, _path: Any) -> str:
        return f"{name}Count" if http_method == "HEAD" else name

    return operation_id
