"""``POST /api/credentials/revoke/``: anyone may report tokens found in public; the live ones are revoked."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, Router, post
from litestar.background_tasks import BackgroundTask
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import JSONBody

from service.config import LeakSettings
from service.errors import ValidationError
from service.http import client_address, error_responses
from service.leaks.schemas import LeakReport, ReportAccepted
from service.leaks.services import revoke_reported
from service.runtime import RuntimeDependency
from service.security.middleware import SKIP_AUTH
from service.security.throttle import address_key

ACCEPTED = ReportAccepted(detail="Report received. Any valid credentials in it will be revoked.")


class CredentialRevocationController(Controller):
    """Unauthenticated by design: whoever finds a token may end it, and learns nothing about it."""

    path = "/api/credentials"
    tags = ["credentials"]
    opt = {SKIP_AUTH: True}
    security = []

    @post("/revoke/", operation_id="CredentialsRevoke", status_code=202, responses=error_responses(400, 413, 429))
    async def revoke(
        self, request: Request[Any, Any, Any], runtime: RuntimeDependency, data: JSONBody[LeakReport]
    ) -> Response[ReportAccepted]:
        """Revoke the live tokens among ``credentials``; the answer is the same whatever they were.

        The work runs after the response is sent, so neither the body nor the time to answer tells a live token
        from a dead or made-up one.
        """
        limit = runtime.settings.leaks.max_credentials_per_request
        if len(data.credentials) > limit:
            raise ValidationError({"credentials": [f"Ensure this field has no more than {limit} elements."]})
        work = BackgroundTask(revoke_reported, runtime, data.credentials, data.source, client_address(request))
        return Response(ACCEPTED, status_code=202, background=work)


def reporter(request: Request[Any, Any, Any]) -> str:
    """Whom the throttle counts: the client address, an IPv6 one by its /64 (as the login throttle counts it)."""
    return address_key(client_address(request))


def credential_revocation(settings: LeakSettings) -> Router:
    """The revocation endpoint behind its throttle: ``requests_per_minute`` per :func:`reporter`, per worker."""
    throttle = RateLimitConfig(
        rate_limit=("minute", settings.requests_per_minute),
        identifier_for_request=reporter,
        set_rate_limit_headers=True,
    )
    return Router("/", route_handlers=[CredentialRevocationController], middleware=[throttle.middleware])
