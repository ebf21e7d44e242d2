"""Guards shared by every controller."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.errors import PermissionDenied
from service.security.principal import Principal

STAFF_ACCESS = "STAFF.ACCESS"


def is_staff_request(principal: Principal) -> bool:
    """Staff, and — for a PAT — carrying the global ``STAFF.ACCESS`` scope (Waldur's rule)."""
    if not principal.is_staff:
        return False
    return principal.limits is None or STAFF_ACCESS in principal.limits.scopes


def staff_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """403 unless the caller acts as staff."""
    if not is_staff_request(connection.user):
        raise PermissionDenied


def no_pat(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """403 when a Personal Access Token tries to manage tokens."""
    if connection.user.is_pat:
        raise PermissionDenied("PAT management requires session or token authentication.")
