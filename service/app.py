"""The Litestar application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from functools import partial
from importlib.metadata import version
from typing import Any

from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from service import __doc__ as description
from service.auth_tokens.controllers import AdminAuthTokenController, AuthTokenController, LoginController
from service.authz.controllers import AuthzController, RoleAssignmentController
from service.authz.sync import FactWatcher
from service.background import Periodic
from service.cli import TokengateCLIPlugin
from service.config import Settings, load_settings
from service.entities.controllers import EntityController
from service.errors import exception_to_response
from service.events.controllers import EventController
from service.events.webhook import WebhookSender
from service.http import JsonRequest
from service.leaks.controllers import credential_revocation
from service.logs import AccessLog, request_context
from service.metrics import COUNTS_FLUSH_SECONDS, count_response, flush_counts, flush_counts_periodically
from service.pats.controllers import PersonalAccessTokenController
from service.pats.services import PatService, detect_reuse
from service.policy.reload import install_sighup_reload
from service.policy_tools.controllers import PolicyController
from service.probes import health, metrics, ready
from service.runtime import Runtime, RuntimeDependency
from service.schema_ui import schema_router, swagger_ui, swagger_ui_assets
from service.security.middleware import AuthenticationMiddleware
from service.security.principal import Principal
from service.security.sync import CredentialWatcher
from service.ui.router import template_config, ui_router
from service.users.controllers import UserController

MAX_BODY_BYTES = 1024 * 1024
EXPIRY_SWEEP_SECONDS = 60.0
BROADCAST_RECONNECT_SECONDS = 5.0  # a lost LISTEN connection is reopened this soon (polling covers the gap)
# Another instance's changes arrive as one notification each: the fact watcher polls once per burst, this long after
# its first notification (at 50 changes a second, one poll per notification took a fifth of a worker's CPU). So
# under steady change elsewhere a worker polls at most about five times a second (each poll is a transaction and two
# statements), and a change still reaches it within a quarter of a second.
FACT_WAKE_SETTLE_SECONDS = 0.2


def provide_principal(request: Request[Principal, Any, Any], runtime: RuntimeDependency) -> Principal:
    """Dependency: the authenticated caller.

    It takes ``runtime`` only to be resolved after it: Litestar resolves a batch of several independent dependencies
    in an anyio task group (a task each), which cost a quarter of an authenticated ``/api/authz/check/``; a batch of
    one is awaited inline.
    """
    return request.user


async def expire_tokens(runtime: Runtime) -> int:
    """Deactivate PATs past their expiry (one ``pat_expired`` event each)."""
    async with runtime.session() as session:
        return await PatService(session=session, runtime=runtime).expire_due()


async def notify_expiring_tokens(runtime: Runtime, now: datetime | None = None) -> int:
    """Give each PAT's owner its expiry notices (``pat_expiring``) as they fall due."""
    async with runtime.session() as session:
        return await PatService(session=session, runtime=runtime).notify_expiring(now)


@contextmanager
def _start_up_frozen() -> Iterator[None]:
    """Run a worker's start-up without the cyclic collector, then freeze what it made out of the collector's sight.

    Everything start-up makes (the mirrored facts above all) lives as long as the worker. Collected as it grows,
    loading 100,000 entities took nine full collections (about 0.9 s of a worker's start, more with every entity);
    frozen, a full collection no longer walks it (about 200 ms each at that size). A collection of the youngest
    generation before the freeze (where everything made while the collector was paused is) frees start-up's own
    cyclic garbage, which would otherwise stay frozen for the worker's life, and walks nothing older.
    """
    gc.disable()
    try:
        yield
        gc.collect(0)
        gc.freeze()
    finally:
        gc.enable()


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the application from ``settings`` (default: ``litestar.toml`` plus ``TOKENGATE_*`` variables)."""
    settings = settings or load_settings()
    runtime = Runtime.build(settings)
    runtime.verifier.on_rotated_out_use = partial(detect_reuse, runtime)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        credential_watcher = CredentialWatcher(
            runtime.alchemy.get_engine(), runtime.verifier, settings.sync_interval_seconds
        )
        fact_watcher = FactWatcher(runtime)
        with _start_up_frozen():
            await fact_watcher.load_all()
            await runtime.broadcast.listen()
            await credential_watcher.poll()
        fact_watch = Periodic(
            "fact-watch",
            settings.sync_interval_seconds,
            fact_watcher.poll,
            settle=FACT_WAKE_SETTLE_SECONDS,
            woken_work=fact_watcher.poll_recent,
        )
        runtime.broadcast.on_facts = fact_watch.wake
        loops = [
            Periodic("usage-flush", settings.tokens.usage_flush_seconds, runtime.usage.flush_due),
            fact_watch,
            Periodic("credential-watch", settings.sync_interval_seconds, credential_watcher.poll),
            Periodic("pat-expiry", EXPIRY_SWEEP_SECONDS, lambda: expire_tokens(runtime)),
            Periodic("login-attempts-prune", settings.login.window_seconds, runtime.throttle.prune),
            Periodic("pat-expiry-notice", EXPIRY_SWEEP_SECONDS, lambda: notify_expiring_tokens(runtime)),
            Periodic("broadcast-listen", BROADCAST_RECONNECT_SECONDS, runtime.broadcast.listen),
            Periodic("metrics-flush", COUNTS_FLUSH_SECONDS, flush_counts_periodically),
        ]
        if settings.webhook.url:
            loops.append(
                Periodic("webhook-delivery", settings.webhook.poll_seconds, WebhookSender(runtime).deliver_due)
            )
        runtime.background = {loop.name: loop for loop in loops}
        for loop in loops:
            loop.start()
        stop_reloading = install_sighup_reload(runtime.reload_policy)
        try:
            yield
        finally:
            gc.unfreeze()
            stop_reloading()
            for loop in loops:
                await loop.stop()
            await runtime.broadcast.close()
            await runtime.usage.flush_at_shutdown()
            flush_counts()

    return Litestar(
        route_handlers=[
            health,
            ready,
            metrics,
            LoginController,
            AuthTokenController,
            AdminAuthTokenController,
            UserController,
            EntityController,
            RoleAssignmentController,
            AuthzController,
            PersonalAccessTokenController,
            PolicyController,
            EventController,
            swagger_ui_assets(),
            ui_router(runtime),
            credential_revocation(settings.leaks),
        ],
        dependencies={
            "runtime": Provide(lambda: runtime, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        middleware=[request_context, AuthenticationMiddleware(runtime.verifier)],
        before_send=[AccessLog(settings.log.access), count_response],
        logging_config=None,  # the process configures logging (service.logs.configure_logging)
        plugins=[SQLAlchemyPlugin(config=runtime.alchemy), TokengateCLIPlugin()],
        exception_handlers={Exception: exception_to_response},
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="tokengate",
            version=version("tokengate"),
            description=description,
            components=Components(
                security_schemes={
                    "Token": SecurityScheme(
                        type="apiKey",
                        name="Authorization",
                        security_scheme_in="header",
                        description="`Token <key>` or `Bearer <key>`",
                    )
                }
            ),
            security=[{"Token": []}],
            render_plugins=[swagger_ui()],
            openapi_router=schema_router(),
        ),
        template_config=template_config(),
        request_max_body_size=MAX_BODY_BYTES,
        request_class=JsonRequest,
        state=State({"runtime": runtime}),
        debug=settings.debug,
    )
