"""Durability: ``kill -9`` the real server in the middle of a PAT create/revoke/rotate load, restart it, and check.

The server is ``uvicorn`` with uvloop and httptools in a subprocess on 127.0.0.1, over a SQLite file (WAL) or a
throwaway PostgreSQL database. What a client was told must hold after the crash:

- every token whose creation (or rotation) answered 201 authenticates, unless a later revoke/rotate answered 2xx;
- every revocation that answered 204, and every rotation's old token, stays dead;
- no rotation is half-done: each rotated token is inactive and has exactly one successor row, at most 20 active.

Requests cut off by the kill have an unknown outcome; their tokens are held only to the invariants.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from service.db import upgrade_database
from service.events.models import Event
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from tests.support.app import ROOT, make_settings
from tests.support.factories import grant, make_entity, user_with_key
from tests.support.security import STATS, counted

pytestmark = [pytest.mark.durability, pytest.mark.slow]

LOAD_SECONDS = 2.0  # enough for dozens of answered operations of each kind before the kill
WORKERS = 6
SECRET = "durability-secret-" + "d" * 40


@dataclass
class Ledger:
    """What the server answered, token by token (plaintext kept only in this test process)."""

    live: dict[str, str] = field(default_factory=dict)  # uuid -> plaintext: created/rotated-in, not yet retired
    dead: dict[str, str] = field(default_factory=dict)  # uuid -> plaintext: revoked (204) or rotated away (201)
    in_flight: Counter[str] = field(default_factory=Counter)  # uuid -> operations sent and not yet answered
    rotations: dict[str, str] = field(default_factory=dict)  # old uuid -> new uuid (201 seen)
    answered: int = 0

    @property
    def unknown(self) -> set[str]:
        """Uuids with an operation cut off by the kill (two workers may act on one token at once)."""
        return {pat_uuid for pat_uuid, pending in self.in_flight.items() if pending}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m uvicorn service.app:create_app --factory`` with uvloop and httptools."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.port = _free_port()
        self.env = {
            **os.environ,
            "TOKENGATE_CONFIG": str(tmp / "absent.toml"),
            "TOKENGATE_DATABASE__URL": url,
            "TOKENGATE_SECURITY__SECRET": SECRET,
            "TOKENGATE_POLICY_DIR": str(ROOT / "policies"),
            "TOKENGATE_TOKENS__USAGE_FLUSH_SECONDS": "0.5",
            "TOKENGATE_TOKENS__USAGE_WRITE_SECONDS": "0",
        }
        self.log = tmp / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "service.app:create_app",
                    "--factory",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("server did not start: " + self.log.read_text()[-3000:])

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _prepare(url: str, tmp: Path) -> str:
    """A user who may delegate PROJECT.UPDATE; returns their legacy key."""
    runtime = Runtime.build(make_settings(url, tmp, TOKENGATE_SECURITY__SECRET=SECRET))
    try:
        owner, key = await user_with_key(runtime, "loader")
        customer = await make_entity(runtime, "customer", "ACME")
        await grant(runtime, owner, "CUSTOMER.OWNER", customer)
        return key
    finally:
        await runtime.alchemy.get_engine().dispose()


async def _load(server: Server, key: str, ledger: Ledger, kill_after: float) -> None:
    """Workers create, revoke and rotate PATs until the server is killed under them."""
    headers = {"Authorization": f"Token {key}"}
    pats = "/api/personal-access-tokens/"
    expires = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    rng = random.Random(8)

    async def worker(client: httpx.AsyncClient, n: int) -> None:
        while True:
            choice = rng.random()
            target = rng.choice(sorted(ledger.live)) if ledger.live else None
            try:
                if target is None or (choice < 0.4 and len(ledger.live) < 16):
                    response = await client.post(
                        pats,
                        headers=headers,
                        json={"name": f"w{n}", "scopes": ["PROJECT.UPDATE"], "expires_at": expires},
                    )
                    if response.status_code == 201:
                        body = response.json()
                        ledger.live[body["uuid"]] = body["token"]
                    else:
                        assert response.status_code == 400, response.text
                elif choice < 0.7:
                    ledger.in_flight[target] += 1
                    response = await client.delete(f"{pats}{target}/", headers=headers)
                    assert response.status_code in (204, 404), response.text
                    if response.status_code == 204 and target in ledger.live:
                        ledger.dead[target] = ledger.live.pop(target)
                    ledger.in_flight[target] -= 1
                else:
                    ledger.in_flight[target] += 1
                    response = await client.post(f"{pats}{target}/rotate/", headers=headers)
                    assert response.status_code in (201, 400, 404), response.text
                    if response.status_code == 201:
                        body = response.json()
                        ledger.rotations[target] = body["uuid"]
                        ledger.live[body["uuid"]] = body["token"]
                        if target in ledger.live:
                            ledger.dead[target] = ledger.live.pop(target)
                    ledger.in_flight[target] -= 1
                ledger.answered += 1
            except httpx.TransportError:
                return  # the server died under this request: its outcome is unknown

    async def killer() -> None:
        await asyncio.sleep(kill_after)
        await asyncio.to_thread(server.kill)

    async with counted(httpx.AsyncClient(base_url=server.base_url, timeout=10)) as client:
        await asyncio.gather(killer(), *(worker(client, n) for n in range(WORKERS)))


async def _verify(server: Server, ledger: Ledger, url: str, tmp: Path) -> None:
    """After the restart: what was acknowledged holds, and rotations are whole."""
    async with counted(httpx.AsyncClient(base_url=server.base_url, timeout=10)) as client:

        async def works(plaintext: str) -> bool:
            response = await client.get("/api/personal-access-tokens/", headers={"Authorization": f"Token {plaintext}"})
            assert response.status_code in (200, 401), response.text
            return response.status_code == 200

        for pat_uuid, plaintext in ledger.live.items():
            if pat_uuid not in ledger.unknown:
                assert await works(plaintext), f"token {pat_uuid} was created (201) but no longer works"
        for pat_uuid, plaintext in ledger.dead.items():
            assert not await works(plaintext), f"token {pat_uuid} was revoked/rotated (2xx) but works again"

    runtime = Runtime.build(make_settings(url, tmp, TOKENGATE_SECURITY__SECRET=SECRET))
    try:
        async with runtime.session() as session:
            rows = {str(row.uuid): row for row in await session.scalars(select(PersonalAccessToken))}
            rotated = [
                event.context for event in await session.scalars(select(Event).where(Event.event_type == "pat_rotated"))
            ]
    finally:
        await runtime.alchemy.get_engine().dispose()
    assert sum(row.is_active for row in rows.values()) <= 20
    successors: dict[str, list[str]] = {}
    for context in rotated:
        old, new = str(uuid.UUID(context["pat_uuid"])), str(uuid.UUID(context["new_pat_uuid"]))
        successors.setdefault(old, []).append(new)
    for old, new in ledger.rotations.items():
        assert successors.get(old) == [new], (old, successors.get(old))
    for old, news in successors.items():
        assert len(news) == 1, f"{old} has {len(news)} successors"
        assert not rows[old].is_active, f"{old} was rotated but is still active"
        assert news[0] in rows, f"{old}'s successor {news[0]} is missing"
    # rows the client never heard of (cut off mid-request) are whole too: committed entirely or not at all
    assert set(ledger.live) | set(ledger.dead) <= set(rows)


@pytest.mark.parametrize("kill_after", [LOAD_SECONDS])
def test_kill_9_mid_load_loses_nothing_acknowledged(own_database_url: str, tmp_path: Path, kill_after: float) -> None:
    upgrade_database(make_settings(own_database_url, tmp_path, TOKENGATE_SECURITY__SECRET=SECRET))
    key = asyncio.run(_prepare(own_database_url, tmp_path))
    server = Server(own_database_url, tmp_path)
    ledger = Ledger()
    try:
        server.start()
        asyncio.run(_load(server, key, ledger, kill_after))
        assert server.process is not None
        assert server.process.returncode == -signal.SIGKILL
        assert ledger.answered >= 8, f"only {ledger.answered} operations answered before the kill"
        assert ledger.rotations
        assert ledger.dead
        assert ledger.live
        server.start()
        STATS.crashes_survived += 1
        asyncio.run(_verify(server, ledger, own_database_url, tmp_path))
        # and the restarted server keeps working: a fresh token can be made and used
        asyncio.run(_load(server, key, Ledger(), kill_after=0.5))
        server.start()
        STATS.crashes_survived += 1
    finally:
        server.stop()
