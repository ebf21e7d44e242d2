"""Shared machinery of the security suite: counters and their summary, and a synchronous harness for Hypothesis.

Hypothesis cannot drive ``async def`` tests by itself, so property and fuzz tests are plain functions that run
coroutines on a private event loop held by :class:`Harness`: the app, its lifespan, its database engine and the
HTTP client all live on that one loop for the whole test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from litestar import Litestar

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime
from tests.support.app import http_client, reset_database, running

T = TypeVar("T")


@dataclass
class Stats:
    """What the security suite did, printed at the end of the run."""

    examples: int = 0
    requests: int = 0
    crashes_survived: int = 0
    server_errors: int = 0
    secrets_found: int = 0
    server_error_samples: list[str] = field(default_factory=list)


STATS = Stats()


async def _count_response(response: httpx.Response) -> None:
    STATS.requests += 1
    if response.status_code >= 500:
        STATS.server_errors += 1
        if len(STATS.server_error_samples) < 20:
            await response.aread()
            request = response.request
            STATS.server_error_samples.append(f"{request.method} {request.url} -> {response.status_code}")


def counted(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Make every response of ``client`` count towards :data:`STATS` (requests sent, 5xx seen)."""
    client.event_hooks["response"].append(_count_response)
    return client


def security_client(app: Litestar, client_ip: str = "127.0.0.1") -> httpx.AsyncClient:
    """An in-process client from ``client_ip`` whose traffic is counted."""
    return counted(http_client(app, client_ip=client_ip))


class Harness:
    """The app running on a private event loop, for synchronous (Hypothesis-driven) tests.

    The loop runs all the time in a thread of its own, as a server's does: the app's background work (the fact
    refresh that ``/ready`` watches, the usage flush) keeps its pace while Hypothesis thinks between requests.
    """

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="harness-loop", daemon=True)
        self._thread.start()
        self.app = create_app(settings)
        self.runtime: Runtime = self.app.state.runtime
        self._stack = AsyncExitStack()
        self.client: httpx.AsyncClient = self.run(self._start())

    async def _start(self) -> httpx.AsyncClient:
        await self._stack.enter_async_context(running(self.app))
        return await self._stack.enter_async_context(security_client(self.app))

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to completion on the harness loop."""

        async def wait() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), self.loop).result()

    def client_from(self, ip: str) -> httpx.AsyncClient:
        """Another counted client whose requests come from ``ip`` (closed with the harness)."""
        client = security_client(self.app, client_ip=ip)
        self._stack.push_async_callback(client.aclose)
        return client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request through the harness client."""
        return self.run(self.client.request(method, url, **kwargs))

    def close(self) -> None:
        """Stop the app, empty the database and close the loop."""
        try:
            self.run(self._stack.aclose())
            self.run(reset_database(self.runtime))
            self.run(self.runtime.alchemy.get_engine().dispose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
            self.loop.close()


@contextlib.contextmanager
def survived_crash() -> Iterator[None]:
    """Count one crash the system survived (a killed server that came back)."""
    yield
    STATS.crashes_survived += 1
