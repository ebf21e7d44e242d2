"""Database configuration, row locking and migrations (advanced-alchemy + Alembic)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
)
from alembic.script import ScriptDirectory
from sqlalchemy import event, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from service.config import Settings
from service.db.transaction import commit_or_roll_back

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for the configured URL; SQLite gets WAL, foreign keys and a busy timeout."""
    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, echo=settings.database.echo, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    return create_async_engine(
        url, echo=settings.database.echo, pool_size=settings.database.pool_size, pool_pre_ping=True
    )


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The engine single-statement reads run on (lookups, polls): autocommit on PostgreSQL, no BEGIN and ROLLBACK.

    SQLite's driver begins no transaction for a SELECT, and switching its isolation level on every checkout costs
    more than it saves (about 1.3 ms against 0.7 ms per lookup, measured side by side).
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def create_alchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    """The advanced-alchemy configuration shared by the app, the CLI and migrations."""
    config = SQLAlchemyAsyncConfig(
        engine_instance=create_engine(settings),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        set_default_exception_handler=False,  # service.errors maps repository errors to Waldur-shaped bodies
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            version_table_name=VERSION_TABLE,
            render_as_batch=True,
        ),
    )
    # The session's key in the request scope is made unique per config, so the handler is built after it.
    config.before_send_handler = commit_or_roll_back(config.session_scope_key)
    return config


class DatabaseUnavailable(Exception):
    """The database did not answer, or is not migrated; the message is one line for the operator."""


def describe_url(settings: Settings) -> str:
    """The database URL without its password, for messages."""
    return make_url(settings.database.url).render_as_string(hide_password=True)


async def _current_revision(settings: Settings) -> str | None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            try:
                revision = await connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
                return str(revision) if revision is not None else None
            except (OperationalError, ProgrammingError) as exc:
                if "no such table" in str(exc) or "does not exist" in str(exc):
                    return None
                raise
    finally:
        await engine.dispose()


def wait_for_database(settings: Settings, say: Callable[[str], None]) -> str | None:
    """Wait up to ``server.database_wait_seconds`` for the database to answer; returns its schema revision.

    ``say`` is told once, in one line, that the command is waiting.

    Raises:
        DatabaseUnavailable: it did not answer in time (the message names the URL and the last error).
    """
    deadline = time.monotonic() + settings.server.database_wait_seconds
    waiting = False
    while True:
        try:
            return anyio.run(_current_revision, settings)
        except (DBAPIError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(f"cannot reach the database at {describe_url(settings)}: {reason}") from None
            if not waiting:
                say(f"waiting for the database at {describe_url(settings)} ({reason})")
                waiting = True
            time.sleep(1.0)


def head_revision() -> str | None:
    """The newest migration shipped with the service."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def prepare_database(settings: Settings, say: Callable[[str], None]) -> None:
    """Wait for the database, then migrate it (``auto_migrate``) or check that it is migrated.

    Raises:
        DatabaseUnavailable: it did not answer, or it is behind and ``auto_migrate`` is off.
    """
    current = wait_for_database(settings, say)
    if current == head_revision():
        return
    if not settings.auto_migrate:
        raise DatabaseUnavailable(
            f"the database at {describe_url(settings)} is not migrated (revision {current}): "
            "run `tokengate database upgrade`"
        )
    upgrade_database(settings)


async def database_answers(engine: AsyncEngine, seconds: float) -> bool:
    """Whether the migrated schema can be read within ``seconds`` (a readiness check)."""
    try:
        async with asyncio.timeout(seconds), engine.connect() as connection:
            await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
    except (DBAPIError, OSError, TimeoutError):
        return False
    return True


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; call it only where no event loop is running."""
    import service.models  # noqa: F401  (registers every table on the metadata)

    config = create_alchemy_config(settings)
    AlembicCommands(sqlalchemy_config=config).upgrade(revision=revision)


async def lock_row(session: AsyncSession, model: Any, row_id: int) -> None:
    """Take a write lock on one row until the transaction ends.

    PostgreSQL gets ``SELECT … FOR UPDATE``; SQLite has no row locks, so a no-op ``UPDATE`` takes the database
    write lock instead. Either way, concurrent transactions that lock the same row run one after another.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(update(model).where(model.id == row_id).values(id=model.id))
    else:
        await session.execute(select(model.id).where(model.id == row_id).with_for_update())
