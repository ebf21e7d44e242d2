"""The bench's own plumbing works: its load generator, its workers, its cache measurement, its round statistics.

The benchmarks themselves never run in CI; these cheap checks (marker ``bench``, part of the default run) keep the
tools they rely on honest.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bench import loadgen
from bench.__main__ import Rounds
from bench.crowd import Churn, Crowd, _sync_url
from bench.loadgen import LoadResult
from bench.tokens import cache_memory
from bench.world import uvicorn_server
from service.broadcast import CHANNEL, FACTS

pytestmark = pytest.mark.bench


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, bytes]] = []  # (Authorization, body) of every request

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.headers.get("Authorization", ""), body))
        body = b'{"uuid":"next"}'
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(name="port")
def fx_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_python_load_generator_follows_uuids(port: int) -> None:
    request = loadgen.Request("POST", "/t/{uuid}/rotate/", {"Content-Type": "application/json"}, b"{}", expect=201)
    result = loadgen.run_python(port, request, 0.5, 2, uuids=["a", "b"], follow="uuid")
    assert result.tool == "python"
    assert result.requests > 0
    assert result.errors == 0
    assert result.p50_ms <= result.p99_ms


def test_python_load_generator_picks_a_token_and_a_target_per_request(port: int) -> None:
    _Ok.seen.clear()
    request = loadgen.Request(
        "POST",
        "/check/",
        {"Content-Type": "application/json"},
        b'{"uuid":"{target}"}',
        expect=201,
        authorizations=tuple(f"Token t{n}" for n in range(50)),
        zipf=True,
        targets=("x", "y"),
    )
    assert loadgen.run_python(port, request, 0.5, 2).errors == 0
    authorizations = [authorization for authorization, _ in _Ok.seen]
    assert {body for _, body in _Ok.seen} == {b'{"uuid":"x"}', b'{"uuid":"y"}'}
    assert len(set(authorizations)) > 5
    assert authorizations.count("Token t0") > authorizations.count("Token t49")  # Zipf: the first is the most used


def test_cache_memory_holds_no_plaintext() -> None:
    result = cache_memory(500)
    assert result.entries == 500
    assert result.bytes > 0
    assert not result.plaintext_found


def _result(rps: float, p50: float = 1.0, seconds: float = 2.0) -> LoadResult:
    return LoadResult("wrk", int(rps * seconds), 0, seconds, rps, p50, p50 * 3)


def test_rounds_ratio_is_the_median_of_per_round_ratios() -> None:
    check = Rounds([_result(80), _result(40), _result(90)])  # the middle round was disturbed
    bare = Rounds([_result(100), _result(100), _result(100)])
    assert check.ratio_to(bare) == pytest.approx(0.8)
    total = check.total
    assert (total.requests, total.seconds, total.rps) == (420, 6.0, 70.0)
    assert total.p50_ms == 1.0


async def pid_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that answers with the serving process's pid."""
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def test_bench_workers_each_take_connections() -> None:
    with uvicorn_server("tests.bench.test_bench_smoke:pid_app", {}, 2, lifespan="off") as port:
        pids: set[bytes] = set()
        deadline = time.monotonic() + 20  # a slow machine may still be starting the second worker
        while len(pids) < 2 and time.monotonic() < deadline:
            # a new connection each time: the kernel spreads them across the two sockets by hash
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                pids.add(response.read())
    assert len(pids) == 2


def test_a_cached_verification_holds_at_most_300_bytes() -> None:
    """Each verification cached past the first 2,000 (by then every owner's principal is cached) adds <= 300 bytes."""
    smaller, larger = cache_memory(2_000), cache_memory(5_000)
    assert (larger.bytes - smaller.bytes) / (larger.entries - smaller.entries) <= 300


def _one_user_and_customer(url: str) -> tuple[int, int]:
    """Migrate the database at ``url`` and store a user and a customer in it; their ids."""
    import asyncio

    from sqlalchemy import insert

    from bench.world import settings_for
    from service.db import upgrade_database
    from service.entities.models import Entity
    from service.runtime import Runtime
    from service.users.models import User

    async def store() -> tuple[int, int]:
        runtime = Runtime.build(settings_for(url))
        try:
            async with runtime.session() as session:
                user = await session.scalar(
                    insert(User.__table__).values(uuid=uuid.uuid4(), username="u").returning(User.__table__.c.id)
                )
                customer = await session.scalar(
                    insert(Entity.__table__)
                    .values(uuid=uuid.uuid4(), type="customer", name="c")
                    .returning(Entity.__table__.c.id)
                )
            return user, customer
        finally:
            await runtime.alchemy.get_engine().dispose()

    upgrade_database(settings_for(url))
    return asyncio.run(store())


def test_the_churn_process_changes_nothing_until_told_and_counts_what_it_made(own_database_url: str) -> None:
    """On PostgreSQL it also announces each change to the workers, as the service does."""
    user, customer = _one_user_and_customer(own_database_url)
    engine = create_engine(_sync_url(own_database_url))
    churn = Churn(Crowd(own_database_url, [], [], [], [], [user], [customer], {}, {}))
    listening = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    postgres = engine.dialect.name == "postgresql"
    try:
        if postgres:
            listening.execute(text(f"LISTEN {CHANNEL}"))
        with engine.connect() as db:
            assert db.execute(text("SELECT count(*) FROM role_assignment")).scalar_one() == 0  # ready, nothing made
        churn.start(20, 0.5)
        made = churn.made()
        heard = list(listening.connection.driver_connection.notifies(timeout=1, stop_after=made)) if postgres else []
        with engine.connect() as db:
            assert made > 0
            assert db.execute(text("SELECT count(*) FROM entity WHERE name = 'churn'")).scalar_one() == made
            assert db.execute(text("SELECT count(*) FROM role_assignment")).scalar_one() == made
            parents = db.execute(text("SELECT DISTINCT parent_id FROM entity WHERE name = 'churn'")).scalars().all()
            assert parents == [customer]
    finally:
        churn.close()
        listening.close()
        engine.dispose()
    if postgres:
        assert [(n.channel, n.payload) for n in heard] == [(CHANNEL, f"bench {FACTS} ")] * made
