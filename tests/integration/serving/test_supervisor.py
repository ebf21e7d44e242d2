"""``tokengate run --workers 2``: SIGTERM to the one pid a supervisor knows stops everything and loses no use."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.db import upgrade_database
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from tests.conftest import make_settings, throwaway_postgres
from tests.integration.serving.served import SECRET, Served, alive, create_pat, descendants, owner_with_pat_rights

pytestmark = [pytest.mark.slow, pytest.mark.durability]

USES = 60


@pytest.fixture(name="served_url")
def fx_served_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database of the parametrised backend that only the served process writes to."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'served.db'}"
        return
    with throwaway_postgres("tokengate_served") as url:
        yield url


async def _use_count(url: str, tmp: Path, pat_uuid: str) -> int:
    runtime = Runtime.build(make_settings(url, tmp, TOKENGATE_SECURITY__SECRET=SECRET))
    try:
        async with runtime.session() as session:
            rows = await session.scalars(select(PersonalAccessToken))
            return next(row.use_count for row in rows if str(row.uuid) == pat_uuid)
    finally:
        await runtime.alchemy.get_engine().dispose()


def test_sigterm_to_the_supervisor_stops_every_worker_and_flushes_usage(served_url: str, tmp_path: Path) -> None:
    upgrade_database(make_settings(served_url, tmp_path, TOKENGATE_SECURITY__SECRET=SECRET))
    key = asyncio.run(owner_with_pat_rights(served_url, tmp_path))
    served = Served(served_url, tmp_path, workers=2)
    try:
        served.start()
        assert served.process is not None
        below = descendants(served.process.pid)
        assert len(below) >= 2, below  # the two workers (and multiprocessing's resource tracker)
        acknowledged = 0
        with httpx.Client(base_url=served.base_url, timeout=10) as client:
            pat = create_pat(client, key)
            for _ in range(USES):  # a fresh connection each: the kernel spreads them over both workers
                with httpx.Client(base_url=served.base_url, timeout=10) as fresh:
                    response = fresh.get(
                        "/api/personal-access-tokens/", headers={"Authorization": f"Token {pat['token']}"}
                    )
                acknowledged += response.status_code == 200
        assert acknowledged == USES
        assert served.terminate() == 0, served.log.read_text()[-3000:]
        assert [pid for pid in below if alive(pid)] == []
    finally:
        served.kill_all()
    assert asyncio.run(_use_count(served_url, tmp_path, pat["uuid"])) == acknowledged
