"""``tokengate run --workers 2``: SIGTERM to the one pid a supervisor knows stops everything and loses no use."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.db import upgrade_database
from service.metrics import COUNTS_FLUSH_SECONDS
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from tests.support.app import make_settings
from tests.support.served import SECRET, Served, alive, create_pat, descendants, owner_with_pat_rights

pytestmark = [pytest.mark.slow, pytest.mark.durability]

USES = 20
METRICS_TOKEN = "scrape-" + "m" * 40


async def _use_count(url: str, tmp: Path, pat_uuid: str) -> int:
    runtime = Runtime.build(make_settings(url, tmp, TOKENGATE_SECURITY__SECRET=SECRET))
    try:
        async with runtime.session() as session:
            rows = await session.scalars(select(PersonalAccessToken))
            return next(row.use_count for row in rows if str(row.uuid) == pat_uuid)
    finally:
        await runtime.alchemy.get_engine().dispose()


def _scrape_after(seconds: float, base_url: str) -> str:
    """The metrics as scraped once every worker has added up its counts (within ``COUNTS_FLUSH_SECONDS``)."""
    time.sleep(seconds)
    return httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text


def test_sigterm_to_the_supervisor_stops_every_worker_and_flushes_usage(own_database_url: str, tmp_path: Path) -> None:
    upgrade_database(make_settings(own_database_url, tmp_path, TOKENGATE_SECURITY__SECRET=SECRET))
    key = asyncio.run(owner_with_pat_rights(own_database_url, tmp_path))
    served = Served(own_database_url, tmp_path, workers=2, TOKENGATE_METRICS__TOKEN=METRICS_TOKEN)
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
        listed = 'tokengate_http_requests_total{method="GET",route="/api/personal-access-tokens",status="200"}'
        assert f"{listed} {float(USES)}" in _scrape_after(COUNTS_FLUSH_SECONDS + 0.5, served.base_url)
        assert served.terminate() == 0, served.log.read_text()[-3000:]
        left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in below if alive(pid)}
        assert left == {}
    finally:
        served.kill_all()
    assert asyncio.run(_use_count(own_database_url, tmp_path, pat["uuid"])) == acknowledged


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orphans.db'}"
    upgrade_database(make_settings(url, tmp_path, TOKENGATE_SECURITY__SECRET=SECRET))
    served = Served(url, tmp_path, workers=2)
    workers: set[int] = set()
    try:
        served.start()
        assert served.process is not None
        workers = descendants(served.process.pid)
        served.process.kill()  # SIGKILL: the supervisor cannot pass anything on
        served.process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers outlived their supervisor"
            time.sleep(0.1)
    finally:
        served.kill_all()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
