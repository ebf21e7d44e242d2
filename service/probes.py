"""What operators' tools ask: liveness (``/health``), readiness (``/ready``) and metrics (``/metrics``).

None of them takes an API token. ``/metrics`` takes the metrics token instead (``Authorization: Bearer …``, setting
``metrics.token``) and answers 404 while none is configured.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from service.db import database_answers
from service.errors import AuthenticationError, NotFound
from service.http import PublicOperation
from service.metrics import scrape, scraper_allowed
from service.runtime import Runtime, RuntimeDependency
from service.security.middleware import SKIP_AUTH

DATABASE_TIMEOUT_SECONDS = 2.0
FACTS_STALE_AFTER_INTERVALS = 10
FACTS_STALE_MIN_SECONDS = 5.0
OK = "ok"


@get(
    "/health", operation_id="Health", opt={SKIP_AUTH: True}, security=[], operation_class=PublicOperation, tags=["meta"]
)
async def health() -> dict[str, str]:
    """Liveness: the process answers (checks nothing else)."""
    return {"status": "ok"}


async def readiness(runtime: Runtime) -> dict[str, str]:
    """Each readiness check's verdict: ``ok`` or what is wrong."""
    settings = runtime.settings
    facts = runtime.background.get("fact-watch")
    flush = runtime.background.get("usage-flush")
    stale_after = max(FACTS_STALE_MIN_SECONDS, FACTS_STALE_AFTER_INTERVALS * settings.sync_interval_seconds)
    facts_fresh = (
        facts is not None and facts.succeeded_at is not None and time.monotonic() - facts.succeeded_at < stale_after
    )
    return {
        "database": OK
        if await database_answers(runtime.alchemy.get_engine(), DATABASE_TIMEOUT_SECONDS)
        else "unreachable",
        "policy": OK if runtime.policy.permissions else "no rules loaded",
        "facts": OK if facts_fresh else f"not refreshed in the last {stale_after:g} s",
        "usage_flush": OK if flush is not None and not flush.failing else "failing",
    }


@get(
    "/ready",
    operation_id="Ready",
    opt={SKIP_AUTH: True},
    security=[],
    operation_class=PublicOperation,
    tags=["meta"],
    responses={HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(dict[str, Any], description="Not ready: see `checks`.")},
)
async def ready(runtime: RuntimeDependency) -> Response[dict[str, Any]]:
    """Readiness: the database answers, the policy is loaded, the fact mirror is fresh and usage flushes work."""
    checks = await readiness(runtime)
    healthy = all(verdict == OK for verdict in checks.values())
    return Response(
        {"status": "ready" if healthy else "unready", "checks": checks},
        status_code=HTTP_200_OK if healthy else HTTP_503_SERVICE_UNAVAILABLE,
    )


@get(
    "/metrics",
    operation_id="Metrics",
    opt={SKIP_AUTH: True},
    security=[],
    operation_class=PublicOperation,
    tags=["meta"],
    include_in_schema=False,
)
async def metrics(request: Request[Any, Any, Any], runtime: RuntimeDependency) -> Response[bytes]:
    """Prometheus exposition of every worker's metrics, for a scraper that sends the metrics token."""
    expected = runtime.settings.metrics.token
    if not expected:
        raise NotFound
    if not scraper_allowed(expected, request.headers.get("authorization")):
        raise AuthenticationError
    body, content_type = scrape()
    return Response(body, media_type=content_type)
