"""Bench databases, the data they hold, and the servers that serve them (127.0.0.1 only).

The test suite makes its PostgreSQL databases with the same helpers (``throwaway_postgres``, ``pg_admin``)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid as uuid_lib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
PG_HOST, PG_PORT = "127.0.0.1", 5432
SECRET = "bench-secret-" + "b" * 40


@dataclass
class World:
    """What the bench created: credentials and the target of the authenticated call."""

    backend: str
    url: str
    env: dict[str, str]
    staff_key: str
    owner_key: str
    owner_id: int
    pat: str
    pat_uuid: str
    customer: str
    project: str
    resource: str


def postgres_reachable() -> bool:
    """Whether something listens on 127.0.0.1:5432."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


async def pg_admin(sql: str) -> None:
    """Run one statement as ``postgres`` in the machine's ``test`` database (creating and dropping databases)."""
    import asyncpg

    connection = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="test")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for the duration of the block (dropped after, even if in use)."""
    name = f"{prefix}_{uuid_lib.uuid4().hex[:12]}"
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def database(backend: str, workdir: Path, label: str) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file in ``workdir`` or a throwaway PostgreSQL database (dropped after)."""
    if backend == "sqlite":
        path = workdir / f"{label}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        yield f"sqlite+aiosqlite:///{path}"
        return
    with throwaway_postgres(f"tokengate_bench_{label}") as url:
        yield url


def service_env(url: str) -> dict[str, str]:
    """``TOKENGATE_*`` variables for a bench server and for the bench process itself."""
    return {
        "TOKENGATE_CONFIG": str(ROOT / "bench" / "no-such-litestar.toml"),  # defaults + these variables only
        "TOKENGATE_DATABASE__URL": url,
        "TOKENGATE_SECURITY__SECRET": SECRET,
        "TOKENGATE_POLICY_DIR": str(ROOT / "policies"),
        # the create-throughput phase issues thousands of tokens for one user; the default cap is 20
        "TOKENGATE_TOKENS__PAT_MAX_PER_USER": "10000000",
        # the load generators send X-Forwarded-For from loopback, as a reverse proxy on the same host would
        "TOKENGATE_SECURITY__TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "TOKENGATE_AUTO_MIGRATE": "false",
        "TOKENGATE_DEBUG": "false",
    }


def settings_for(url: str):
    """The settings a bench server on ``url`` runs with."""
    from service.config import load_settings

    env = service_env(url)
    return load_settings(path=env["TOKENGATE_CONFIG"], environ=env)


def prepare(backend: str, url: str) -> World:
    """Migrate, then create the bench data through the service layer."""
    from service.db import upgrade_database

    settings = settings_for(url)
    upgrade_database(settings)
    return asyncio.run(_populate(backend, url, settings))


async def _populate(backend: str, url: str, settings) -> World:
    from service.auth_tokens.services import AuthTokenService
    from service.authz.schemas import EntityRef, RoleAssignmentCreate
    from service.authz.services import RoleAssignmentService
    from service.entities.schemas import EntityCreate
    from service.entities.services import EntityService
    from service.pats.schemas import AllowedScopeIn, PatCreate
    from service.pats.services import PatService
    from service.runtime import Runtime
    from service.users.schemas import UserCreate
    from service.users.services import UserService

    runtime = Runtime.build(settings)
    try:

        async def user(name: str, staff: bool):
            async with runtime.session() as session:
                return await UserService(session=session, runtime=runtime).create_user(
                    UserCreate(username=name, is_staff=staff)
                )

        async def key(u) -> str:
            async with runtime.session() as session:
                return await AuthTokenService(session=session, runtime=runtime).obtain_key(u)

        async def entity(kind: str, name: str, parent=None):
            async with runtime.session() as session:
                return await EntityService(session=session, runtime=runtime).register(
                    EntityCreate(type=kind, name=name, parent=parent.uuid if parent else None)
                )

        staff, owner = await user("bench-staff", True), await user("bench-owner", False)
        customer = await entity("customer", "ACME")
        project = await entity("project", "Apollo", customer)
        resource = await entity("resource", "vm-1", project)
        async with runtime.session() as session:
            await RoleAssignmentService(session=session, runtime=runtime).grant(
                RoleAssignmentCreate(
                    user=owner.uuid, role="CUSTOMER.OWNER", scope=EntityRef(type="customer", uuid=customer.uuid)
                ),
                actor_id=staff.id,
            )
        async with runtime.session() as session:
            token, plaintext = await PatService(session=session, runtime=runtime).issue(
                owner,
                PatCreate(
                    name="bench",
                    scopes=["RESOURCE.UPDATE"],
                    expires_at=datetime.now(UTC) + timedelta(days=30),
                    allowed_scopes=[AllowedScopeIn(type="customer", uuid=customer.uuid)],
                ),
            )
        return World(
            backend,
            url,
            service_env(url),
            await key(staff),
            await key(owner),
            owner.id,
            plaintext,
            str(token.uuid),
            str(customer.uuid),
            str(project.uuid),
            str(resource.uuid),
        )
    finally:
        await runtime.alchemy.get_engine().dispose()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def uvicorn_server(
    target: str,
    env: dict[str, str],
    workers: int,
    *,
    factory: bool = False,
    lifespan: str = "on",
    pids: list[int] | None = None,
) -> Iterator[int]:
    """Serve ``target`` on a free port with ``workers`` uvicorn processes (uvloop + httptools, never plain asyncio).

    Each has its own ``SO_REUSEPORT`` socket so connections spread evenly (docs/decisions.md, 6; ``bench/serve.py``);
    their process ids are appended to ``pids``. Their standard error goes to a temporary file, never a pipe: a
    worker logging more than a pipe holds while nobody reads it would block in the middle of the bench.
    """
    port = free_port()
    command = [sys.executable, "-m", "bench.serve", target, "--port", str(port), "--lifespan", lifespan]
    if factory:
        command.append("--factory")
    errors = [tempfile.TemporaryFile() for _ in range(workers)]
    processes = [
        subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=error)
        for error in errors
    ]
    if pids is not None:
        pids.extend(process.pid for process in processes)
    try:
        _wait_ready(port, processes, errors)
        yield port
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for error in errors:
            error.close()


def _wait_ready(port: int, processes: list[subprocess.Popen], errors: list[IO[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for process, error in zip(processes, errors, strict=True):
            if process.poll() is not None:
                error.seek(0)
                raise RuntimeError(f"server exited: {error.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        raise RuntimeError("server did not answer /health within 60 s")
    time.sleep(1.0 + 0.5 * len(processes))  # let every worker finish its lifespan start-up, not just the first


def rss_mib(pids: list[int]) -> float:
    """Resident memory of these processes together, MiB."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def call(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """One request, for checking that a phase's request does what it should before timing it."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body or None, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
