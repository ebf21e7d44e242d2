"""``/ready`` follows the database away and back; ``/metrics`` counts traffic for a scraper with the token."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bench.world import pg_admin
from service.app import create_app
from service.db import upgrade_database
from service.runtime import Runtime
from tests.support.app import http_client, make_settings, running
from tests.support.pats import check, create_pat
from tests.support.world import World

METRICS_TOKEN = "scrape-" + "m" * 40


async def _ready(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/ready")


async def _take_database_away(runtime: Runtime, url: str, tmp: Path) -> None:
    """Make the database unreachable: refuse connections (PostgreSQL) or replace the file by garbage (SQLite)."""
    database = make_url(url).database
    assert database
    if url.startswith("sqlite"):
        shutil.move(database, tmp / "away.db")
        await asyncio.to_thread(Path(database).write_bytes, b"not a database " * 100)
    else:
        await pg_admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
    await runtime.alchemy.get_engine().dispose()  # SQLite: open connections keep the old file


async def _bring_database_back(runtime: Runtime, url: str, tmp: Path) -> None:
    database = make_url(url).database
    assert database
    if url.startswith("sqlite"):
        shutil.move(tmp / "away.db", database)
    else:
        await pg_admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    await runtime.alchemy.get_engine().dispose()


async def test_ready_turns_unready_without_the_database_and_ready_when_it_returns(
    own_database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(own_database_url, tmp_path)
    await asyncio.to_thread(upgrade_database, settings)
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    async with running(app), http_client(app) as client:
        response = await _ready(client)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "ready",
            "checks": {"database": "ok", "policy": "ok", "facts": "ok", "usage_flush": "ok"},
        }
        assert (await client.get("/health")).status_code == 200
        await _take_database_away(runtime, own_database_url, tmp_path)
        try:
            response = await _ready(client)
            assert response.status_code == 503, response.text
            assert response.json()["status"] == "unready"
            assert response.json()["checks"]["database"] == "unreachable"
            assert (await client.get("/health")).status_code == 200  # alive all the same
        finally:
            await _bring_database_back(runtime, own_database_url, tmp_path)
        deadline = time.monotonic() + 10
        while (response := await _ready(client)).status_code != 200:
            assert time.monotonic() < deadline, response.text
            await asyncio.sleep(0.2)
    await runtime.alchemy.get_engine().dispose()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_decisions_and_verifications_for_the_scraper_only(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    runtime.settings.metrics.token = METRICS_TOKEN
    scraper = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    before = await client.get("/metrics", headers=scraper)
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    created = await create_pat(client, world.owner_headers)
    for _ in range(3):
        assert (await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)).json()["allowed"]
    forged = created["token"][:-1] + ("x" if created["token"][-1] != "x" else "y")
    assert (await check(client, forged, "PROJECT.UPDATE")).status_code == 401
    after = _samples((await client.get("/metrics", headers=scraper)).text)
    was = _samples(before.text)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - was.get(key, 0.0)

    assert moved("tokengate_decisions_total", clause="role", result="allow") >= 3
    assert moved("tokengate_verifications_total", kind="pat", result="ok") >= 1
    assert moved("tokengate_verifications_total", kind="pat", result="refused") == 1
    assert moved("tokengate_verification_cache_total", result="hit") >= 1
    assert moved("tokengate_verification_cache_total", result="miss") >= 2
    assert moved("tokengate_http_requests_total", route="/api/authz/check", method="POST", status="200") == 3
    assert moved("tokengate_http_requests_total", route="/api/authz/check", method="POST", status="401") == 1
    assert ("tokengate_policy_generation", ()) in after


async def test_metrics_are_not_served_without_a_metrics_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics", headers={"Authorization": "Bearer "})).status_code == 404
