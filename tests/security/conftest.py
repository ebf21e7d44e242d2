"""Fixtures of the security suite (helpers in :mod:`tests.support.security`), and its counts at the end of a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar

from tests.support.app import make_settings, running
from tests.support.security import STATS, Harness, security_client


@pytest.fixture(name="harness")
def fx_harness(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    """The app on a private loop over the parametrised database (SQLite, PostgreSQL)."""
    harness = Harness(make_settings(database_url, tmp_path))
    try:
        yield harness
    finally:
        harness.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the security counts at the end of every run that collected the suite."""
    if not (STATS.examples or STATS.requests):
        return
    terminalreporter.section("tokengate security counts")
    terminalreporter.write_line(
        f"examples tried: {STATS.examples}; requests sent: {STATS.requests}; crashes survived: "
        f"{STATS.crashes_survived}; 5xx seen: {STATS.server_errors}; secrets found: {STATS.secrets_found}"
    )
    for sample in STATS.server_error_samples:
        terminalreporter.write_line(f"  5xx: {sample}")


@pytest.fixture(name="sclient")
async def fx_sclient(app: Litestar) -> Any:
    """Like ``client`` (the app's lifespan running around it), but every request is counted."""
    async with running(app), security_client(app) as client:
        yield client
