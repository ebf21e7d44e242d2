"""Database configuration, row locking and migrations (advanced-alchemy + Alembic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from service.config import Settings

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


def create_alchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    """The advanced-alchemy configuration shared by the app, the CLI and migrations."""
    return SQLAlchemyAsyncConfig(
        engine_instance=create_engine(settings),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        before_send_handler="autocommit",
        set_default_exception_handler=False,  # service.errors maps repository errors to Waldur-shaped bodies
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            version_table_name=VERSION_TABLE,
            render_as_batch=True,
        ),
    )


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
