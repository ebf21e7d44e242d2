"""Shared fixtures: every integration test runs on SQLite and, when reachable, on PostgreSQL.

Under ``CI=true`` an unreachable PostgreSQL fails the run instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Litestar
from sqlalchemy import text

from service.app import create_app
from service.config import Settings, load_settings
from service.db import upgrade_database
from service.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT = "127.0.0.1", 5432
TABLES = [
    "webhook_delivery",
    "audit_event",
    "login_attempts",
    "personal_access_token",
    "auth_token",
    "role_assignment",
    "entity",
    "user_account",
]


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


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


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database per backend for the whole run."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'tokengate.db'}"
        upgrade_database(make_settings(url, tmp))
        yield url
        return
    if not _postgres_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is unreachable and CI=true: the suite must run on it")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    with throwaway_postgres("tokengate_test") as url:
        upgrade_database(make_settings(url, tmp))
        yield url


@pytest.fixture(name="own_database_url")
def fx_own_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database of the parametrised backend for one test (a server writes it, or it is taken away)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"
        return
    with throwaway_postgres("tokengate_own") as url:
        yield url


async def _pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="test")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for the duration of the block (dropped after, even if in use)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def reset_database(runtime: Runtime) -> None:
    """Empty every table (the per-backend database is shared by the whole run)."""
    async with runtime.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            await session.execute(text("UPDATE entity SET parent_id = NULL"))
            for table in TABLES:
                await session.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(autouse=True)
def _release_alchemy_keys() -> Iterator[None]:
    """Forget the state keys of the apps a test made once it is over.

    advanced-alchemy records every config's keys in class-level sets and finds a free key by recursing through
    ``key_1``, ``key_2``, … one call per config ever made: about a thousand apps in one test process exceed
    Python's recursion limit. A service process makes one config per worker; the keys only need to be unique
    among the configs of one app.
    """
    yield
    for registry in (
        "_SESSION_SCOPE_KEY_REGISTRY",
        "_ENGINE_APP_STATE_KEY_REGISTRY",
        "_SESSIONMAKER_APP_STATE_KEY_REGISTRY",
    ):
        getattr(SQLAlchemyAsyncConfig, registry).clear()


@pytest.fixture(name="settings")
def fx_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture(name="app")
async def fx_app(settings: Settings) -> AsyncIterator[Litestar]:
    app = create_app(settings)
    yield app
    runtime: Runtime = app.state.runtime
    await reset_database(runtime)
    await runtime.alchemy.get_engine().dispose()


@pytest.fixture(name="runtime")
def fx_runtime(app: Litestar) -> Runtime:
    return app.state.runtime


@pytest.fixture(name="client")
async def fx_client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the test's event loop, with the app's lifespan running around it."""
    async with running(app), http_client(app) as client:
        yield client


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
