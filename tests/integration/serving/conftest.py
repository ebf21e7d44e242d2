"""A database of the parametrised backend that only one test uses (it is taken away, or a server writes it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import throwaway_postgres


@pytest.fixture(name="own_database_url")
def fx_own_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'own.db'}"
        return
    with throwaway_postgres("tokengate_own") as url:
        yield url
