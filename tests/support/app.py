"""The app under test: settings, databases, the lifespan and an in-process HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text

from service.config import Settings, load_settings
from service.runtime import Runtime

SHARED_LOOP = pytest.mark.asyncio(loop_scope="module")
"""Marks a test that uses ``module_app`` or ``module_client``: it runs on their module-wide event loop."""
ROOT = Path(__file__).resolve().parent.parent.parent
TABLES = [
    "webhook_delivery",  # children before their parents: the rows are deleted in this order
    "audit_event",
    "login_attempts",
    "personal_access_token",
    "auth_token",
    "role_assignment",
    "entity",
    "entity_deletion",
    "user_account",
]


def make_settings(database_url: str, tmp: Path, **overrides: str) -> Settings:
    """Settings for a test database: a fixed secret, the shipped policy, no automatic flushing."""
    environ = {
        "TOKENGATE_DATABASE__URL": database_url,
        "TOKENGATE_SECURITY__SECRET": "test-secret-" + "x" * 40,
        "TOKENGATE_POLICY_DIR": str(ROOT / "policies"),
        "TOKENGATE_TOKENS__USAGE_FLUSH_SECONDS": "3600",
        **overrides,
    }
    return load_settings(path=tmp / "absent.toml", environ=environ)


async def reset_database(runtime: Runtime) -> None:
    """Empty every table and restart the ids (the per-backend database is shared by the whole run).

    ``DELETE`` rather than ``TRUNCATE``: on tables this small PostgreSQL deletes in milliseconds, while a
    ``TRUNCATE`` of eight tables takes about 300 ms, after every test.
    """
    async with runtime.session() as session:
        await session.execute(text("UPDATE entity SET parent_id = NULL"))
        for table in TABLES:
            await session.execute(text(f"DELETE FROM {table}"))
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT setval(oid, 1, false) FROM pg_class WHERE relkind = 'S'"))


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[None]:
    """Run the app's lifespan in a task of its own (anyio needs one task to enter and exit it)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(serve())
    await asyncio.wait([task, asyncio.ensure_future(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


def http_client(app: Litestar, client_ip: str = "127.0.0.1") -> httpx.AsyncClient:
    """An in-process HTTP client whose requests come from ``client_ip``."""
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver.local")
