"""A guard any controller can use to require a permission on the entity a request names."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from service.errors import PermissionDenied


def requires(permission: str, entity_param: str = "uuid") -> Guard:
    """403 unless the caller may use ``permission`` on the entity whose UUID is the path parameter ``entity_param``.

    The decision follows DESIGN §3 (token scopes and bindings, live roles on the entity or its ancestors, staff),
    so a role revoked a moment ago is already refused.
    """

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        entity = connection.path_params.get(entity_param)
        decision = connection.app.state.runtime.policy.decide(
            connection.user.subject, permission, str(entity) if entity is not None else None
        )
        if not decision.allowed:
            raise PermissionDenied

    return guard
