"""Fixtures every test can use; helpers and factories live in ``tests/support`` (never import a conftest).

Every database fixture is parametrised over SQLite and PostgreSQL (marker ``postgres``); under ``CI=true`` an
unreachable PostgreSQL fails the run instead of skipping it.

- ``database_url``: a migrated database per backend for the whole run; ``own_database_url``: a fresh one per test;
  ``module_database_url``: a fresh migrated one per module
- ``module_app``, ``module_client``, ``module_world``: one app (lifespan running), client and world over
  ``module_database_url`` for all the tests of a module that change nothing; such tests are marked
  ``SHARED_LOOP`` (tests/support/app.py); other data they share is made in a module-scoped fixture of their own
- ``settings``, ``app``, ``runtime``: the app over ``database_url`` (every table is emptied after the test)
- ``client``: an in-process HTTP client with the app's lifespan running around it
- ``session``: a database session of ``runtime``, to call a domain service directly
- ``staff``: a staff caller (user ``root``) with a legacy key, as a :class:`~tests.support.world.Caller`
- ``tree``: the entities of :class:`~tests.support.world.Tree` (two customers, projects, resources, an offering)
- ``world``: ``tree``, ``staff`` and an owner of its first customer (:class:`~tests.support.world.World`)
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from bench.world import postgres_reachable, throwaway_postgres
from service.app import create_app
from service.config import Settings
from service.db import upgrade_database
from service.runtime import Runtime
from tests.support.app import (
    http_client,
    make_settings,
    reset_database,
    running,
)
from tests.support.world import Caller, Tree, World, build_tree, build_world, make_caller


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database per backend for the whole run."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'tokengate.db'}"
        upgrade_database(make_settings(url, tmp))
        yield url
        return
    if not postgres_reachable():
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


@pytest.fixture(scope="module", name="module_database_url")
def fx_module_database_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database of the parametrised backend for one module (the tables of ``database_url`` are
    emptied after every test, so data that outlives a test needs a database of its own).
    """
    tmp = tmp_path_factory.mktemp("module")
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp / 'module.db'}"
        upgrade_database(make_settings(url, tmp))
        yield url
        return
    with throwaway_postgres("tokengate_module") as url:
        upgrade_database(make_settings(url, tmp))
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="module_app")
async def fx_module_app(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Litestar]:
    app = create_app(make_settings(module_database_url, tmp_path_factory.mktemp("module-app")))
    async with running(app):
        yield app
    await app.state.runtime.alchemy.get_engine().dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="module_client")
async def fx_module_client(module_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(module_app) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="module_world")
async def fx_module_world(module_app: Litestar) -> World:
    runtime: Runtime = module_app.state.runtime
    return await build_world(runtime, await make_caller(runtime, "root", staff=True), await build_tree(runtime))


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


@pytest.fixture(name="session")
async def fx_session(runtime: Runtime) -> AsyncIterator[AsyncSession]:
    """A session of ``runtime`` (committed at the end of the test unless it raised)."""
    async with runtime.session() as session:
        yield session


@pytest.fixture(name="staff")
async def fx_staff(runtime: Runtime) -> Caller:
    """A staff user (``root``) and the headers of their legacy token."""
    return await make_caller(runtime, "root", staff=True)


@pytest.fixture(name="tree")
async def fx_tree(runtime: Runtime) -> Tree:
    """Two customers with projects, resources and an offering (see :class:`~tests.support.world.Tree`)."""
    return await build_tree(runtime)


@pytest.fixture(name="world")
async def fx_world(runtime: Runtime, staff: Caller, tree: Tree) -> World:
    """The tree, the staff caller, and an owner of ``tree.acme`` (see :class:`~tests.support.world.World`)."""
    return await build_world(runtime, staff, tree)
