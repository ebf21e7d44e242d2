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


PAT_CANNOT_MANAGE_CREDENTIALS = (
    "A personal access token cannot create, rotate or revoke tokens, regenerate or delete keys, set passwords or "
    "change network ACLs: authenticate with a password login's token instead."
)


def refuse_pat(principal: Principal) -> None:
    """403 for a Personal Access Token, staff's included: no PAT may mint or reset a credential.

    Otherwise a narrow token (one scope, one network) could launder itself into unrestricted ones: a new password,
    a regenerated key, a PAT with other scopes and no ACL.
    """
    if principal.is_pat:
        raise PermissionDenied(PAT_CANNOT_MANAGE_CREDENTIALS)


def no_pat(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Route guard: :func:`refuse_pat` for every request to the route (token and key management)."""
    refuse_pat(connection.user)
