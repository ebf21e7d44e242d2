"""A guard any controller can use to require a permission on the entity a request names."""

from __future__ import annotations

import logging
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from service.errors import PermissionDenied

logger = logging.getLogger("tokengate.authz")


def requires(permission: str, entity_param: str | None = "uuid") -> Guard:
    """403 unless the caller may use ``permission`` on the entity whose UUID is the path parameter ``entity_param``.

    ``entity_param=None`` asks about the permission itself (a global one, such as ``STAFF.ACCESS``). The decision
    follows the decision rule in docs/architecture.md (token scopes and bindings, live roles on the entity or its
    ancestors, staff), so a role revoked a moment ago is already refused. A route without the named path parameter
    (a misspelling) refuses everyone, staff included, and logs the mistake: it never quietly asks the weaker,
    entity-less question.
    """

    def guard(connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler) -> None:
        entity = None
        if entity_param is not None:
            if entity_param not in connection.path_params:
                logger.error(
                    "requires(%r, %r) on %s: the route has no such path parameter; refusing",
                    permission,
                    entity_param,
                    route_handler,
                )
                raise PermissionDenied
            entity = str(connection.path_params[entity_param])
        if not connection.app.state.runtime.policy.decide(connection.user.subject, permission, entity).allowed:
            raise PermissionDenied

    return guard
