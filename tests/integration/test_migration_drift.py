"""The migrations build exactly the schema the models declare, on every backend.

A model changed without a migration (or a migration that no longer matches its model) passes every other test
that creates its tables from the migrations and still breaks the next deployment's upgrade or leaves a column
the code never fills. Alembic's own comparison, the one ``alembic revision --autogenerate`` runs, finds it.
"""

from __future__ import annotations

from typing import Any

from advanced_alchemy.base import metadata_registry
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import service.models  # noqa: F401  (registers every table)
from service.db import VERSION_TABLE


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [
        difference
        for difference in compare_metadata(context, metadata_registry.get(None))
        if not (difference[0] == "remove_table" and difference[1].name == VERSION_TABLE)
    ]


async def test_the_migrated_schema_is_the_models_schema(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []
