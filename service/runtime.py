"""The per-process runtime: settings, keys and the long-lived components every request shares."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
from advanced_alchemy.base import ModelProtocol
from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from litestar.di import NamedDependency, Provide
from litestar.params import SkipValidation
from sqlalchemy.ext.asyncio import AsyncSession

from service.background import Periodic
from service.broadcast import FACTS, POLICY, TOKEN, USER, Broadcast
from service.config import Settings
from service.crypto import Keyring, load_secret
from service.db import create_alchemy_config
from service.db.transaction import commit, roll_back
from service.events.services import EventService
from service.policy.engine import PolicyEngine
from service.policy.reload import reload_policy
from service.security.client_ip import IPNetwork
from service.security.rotation import adopt_previous_secret
from service.security.throttle import LoginThrottle
from service.security.usage import UsageRecorder
from service.security.verifier import TokenVerifier

T = TypeVar("T")
ServiceT = TypeVar("ServiceT")
ModelT = TypeVar("ModelT", bound=ModelProtocol)
RepositoryT = TypeVar("RepositoryT", bound=SQLAlchemyAsyncRepository[Any])


@dataclass(eq=False)
class Runtime:
    """What lives as long as the worker: built once by ``create_app`` and stored in ``app.state.runtime``."""

    settings: Settings
    keyring: Keyring
    alchemy: SQLAlchemyAsyncConfig
    policy: PolicyEngine
    trusted_proxies: tuple[IPNetwork, ...]
    fact_versions: dict[str, datetime] = field(default_factory=dict)
    """``updated_at`` of every entity and assignment row mirrored in ``policy`` (see ``service.authz.sync``)."""
    entities_refreshed_here: dict[str, bool] = field(default_factory=dict)
    """Entities this worker changed since its running fact poll began, each True if it stands (registered or
    changed) and False if deleted: what that poll read of them may be older than the change."""
    verifier: TokenVerifier = field(init=False)
    usage: UsageRecorder = field(init=False)
    throttle: LoginThrottle = field(init=False)
    broadcast: Broadcast = field(init=False)
    background: dict[str, Periodic] = field(default_factory=dict)
    """The worker's background loops by name, while the app runs (``usage-flush``, ``fact-watch``, …)."""

    def __post_init__(self) -> None:
        """Build the parts, each given the collaborators it uses (none of them knows the runtime)."""
        engine = self.alchemy.get_engine()
        self.usage = UsageRecorder(self.session, self.event_recorder, self.settings.tokens.usage_write_seconds)
        self.verifier = TokenVerifier(
            self.settings.tokens,
            self.keyring,
            self.trusted_proxies,
            engine,
            self.usage,
            partial(adopt_previous_secret, self.keyring, self.session),
        )
        self.broadcast = Broadcast(engine, self.verifier, self.reload_policy_here)
        self.throttle = LoginThrottle(self.settings.login, self.session, self.event_recorder)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Load the secret and the policy, and configure the database."""
        return cls(
            settings=settings,
            keyring=Keyring.from_secret(
                load_secret(settings.security.secret, settings.security.secret_file),
                tuple(old.encode() for old in settings.security.previous_secrets),
            ),
            alchemy=create_alchemy_config(settings),
            policy=PolicyEngine.from_directory(Path(settings.policy_dir), settings.decision_memo_size, counted=True),
            trusted_proxies=tuple(ipaddress.ip_network(net) for net in settings.security.trusted_proxies),
        )

    def event_recorder(self, session: AsyncSession) -> EventService:
        """An event service on ``session`` that queues the configured event types for the webhook."""
        webhook = self.settings.webhook
        return EventService(session=session, outbox=frozenset(webhook.event_types) if webhook.url else frozenset())

    async def forget_user(self, user_id: int) -> None:
        """After a committed change to a user: drop their cached credentials here and in every other worker."""
        self.verifier.forget_user(user_id)
        await self.broadcast.announce(USER, str(user_id))

    async def forget_token(self, token_hash: str) -> None:
        """After a committed revocation, rotation or ACL change: drop the credential here and everywhere else."""
        self.verifier.forget_token(token_hash)
        await self.broadcast.announce(TOKEN, token_hash)

    async def reload_policy(self) -> bool:
        """Reload the policy directory (on SIGHUP); when the new rules are in force, every other worker reloads too."""
        if not self.reload_policy_here():
            return False
        await self.broadcast.announce(POLICY)
        return True

    def reload_policy_here(self) -> bool:
        """Reload this worker's policy directory only; False (old rules kept, problem logged) when it is broken."""
        return reload_policy(self.policy, Path(self.settings.policy_dir))

    async def facts_changed(self) -> None:
        """After committed entity or role changes (already mirrored here): have every other worker poll now."""
        await self.broadcast.announce(FACTS)

    def run_once(self, work: Callable[[Runtime], Awaitable[T]]) -> T:
        """Run ``work`` on a fresh event loop (a CLI command), then release the database connections."""

        async def main() -> T:
            try:
                return await work(self)
            finally:
                await self.alchemy.get_engine().dispose()

        return anyio.run(main)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """The unit of work outside request handlers (middleware, CLI, background tasks).

        Commits on success, then runs what was queued with ``after_commit``; rolls back on any exception.
        """
        async with self.alchemy.get_session() as session:
            try:
                yield session
            except BaseException:
                await roll_back(session)
                raise
            await commit(session)


class DomainService(SQLAlchemyAsyncRepositoryService[ModelT, RepositoryT]):
    """A repository service that knows the worker's runtime and records audit events in its own transaction."""

    def __init__(self, session: Any, runtime: Runtime, **kwargs: Any) -> None:
        super().__init__(session=session, **kwargs)
        self.runtime = runtime
        self.events = runtime.event_recorder(session)


RuntimeDependency = NamedDependency[SkipValidation[Runtime]]
"""Handler/provider parameter type for the worker's :class:`Runtime` (the ``runtime`` dependency)."""


def provide_service(service_class: Callable[..., ServiceT]) -> Provide:
    """A Litestar dependency that builds ``service_class`` on the request's session with the runtime attached."""

    async def provide(db_session: NamedDependency[AsyncSession], runtime: RuntimeDependency) -> AsyncIterator[ServiceT]:
        yield service_class(session=db_session, runtime=runtime)

    provide.__annotations__["return"] = AsyncIterator[service_class]  # type: ignore[valid-type]
    return Provide(provide)
