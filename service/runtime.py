"""The per-process runtime: settings, keys and the long-lived components every request shares."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from sqlalchemy.ext.asyncio import AsyncSession

from service.config import Settings
from service.crypto import Keyring

ServiceT = TypeVar("ServiceT")


@dataclass(eq=False)
class Runtime:
    """What lives as long as the worker: built once by ``create_app`` and stored in ``app.state.runtime``."""

    settings: Settings
    keyring: Keyring
    alchemy: SQLAlchemyAsyncConfig
    components: dict[str, Any] = field(default_factory=dict)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for work outside request handlers (middleware, CLI, background tasks); commits on success."""
        async with self.alchemy.get_session() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise


def service_provider(service_class: Callable[..., ServiceT]) -> Callable[..., AsyncIterator[ServiceT]]:
    """A Litestar dependency that builds ``service_class`` on the request's session with the runtime attached."""

    async def provide(db_session: AsyncSession, runtime: Runtime) -> AsyncIterator[ServiceT]:
        yield service_class(session=db_session, runtime=runtime)

    provide.__annotations__["return"] = AsyncIterator[service_class]  # type: ignore[valid-type]
    return provide
