"""Many clients: 10,000 PATs of 1,000 users, a tree of 100,000 resources, and changes made elsewhere in it.

:func:`populate` bulk-inserts the rows (SQLAlchemy Core, in chunks): 100 customers of 10 projects of 100 resources
each, every user the owner of one customer, every user's PATs bound to that customer. Run as
``python -m bench.crowd SPEC.json`` (:class:`Churn`) it registers projects and grants roles on them, straight in the
database as another instance would, at a given rate for a given time, so the check's throughput can be measured
with changes happening elsewhere in the tree (the workers find them by polling, and on PostgreSQL by NOTIFY).
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid as uuid_lib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.world import ROOT, settings_for

CUSTOMERS, PROJECTS_PER_CUSTOMER, RESOURCES_PER_PROJECT = 100, 10, 100
CHUNK = 5_000


@dataclass
class Crowd:
    """What :func:`populate` stored: the PATs, tokens that look as good but are stored nowhere, the targets."""

    url: str
    tokens: list[str]
    groups: list[int]
    """The customer (its index) each token's owner owns: the token's targets are that customer's resources."""
    unknown: list[str]
    resources: list[str]
    """Every resource, customer after customer (``RESOURCES_PER_PROJECT * PROJECTS_PER_CUSTOMER`` each)."""
    user_ids: list[int]
    customer_ids: list[int]
    parents: dict[str, str | None]
    """Every entity's uuid and its parent's (for the peers' in-memory walks)."""
    owners: dict[str, str]
    """User id -> the customer the user owns."""


def populate(url: str, users: int = 1_000, per_user: int = 10) -> Crowd:
    """Migrate the database at ``url`` and fill it (about a minute for the default sizes under load)."""
    from service.db import upgrade_database

    settings = settings_for(url)
    upgrade_database(settings)
    return asyncio.run(_populate(url, settings, users, per_user))


async def _insert(session: Any, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` in chunks; their ids, in order."""
    from sqlalchemy import insert

    ids: list[int] = []
    for start in range(0, len(rows), CHUNK):
        result = await session.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows[start : start + CHUNK]
        )
        ids.extend(result.scalars().all())
    return ids


async def _populate(url: str, settings: Any, users: int, per_user: int) -> Crowd:
    from sqlalchemy import text

    from service.authz.models import RoleAssignment
    from service.crypto import display_prefix, new_pat
    from service.entities.models import Entity
    from service.pats.models import PersonalAccessToken
    from service.runtime import Runtime
    from service.users.models import User

    runtime = Runtime.build(settings)
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    entities = Entity.__table__
    try:
        async with runtime.session() as session:
            user_ids = await _insert(
                session, User.__table__, [{"uuid": uuid_lib.uuid4(), "username": f"crowd-{i}"} for i in range(users)]
            )
            customer_uuids = [uuid_lib.uuid4() for _ in range(CUSTOMERS)]
            customer_ids = await _insert(
                session,
                entities,
                [{"uuid": u, "type": "customer", "name": f"c{i}"} for i, u in enumerate(customer_uuids)],
            )
            project_uuids = [uuid_lib.uuid4() for _ in range(CUSTOMERS * PROJECTS_PER_CUSTOMER)]
            project_ids = await _insert(
                session,
                entities,
                [
                    {
                        "uuid": u,
                        "type": "project",
                        "name": f"p{i}",
                        "parent_id": customer_ids[i // PROJECTS_PER_CUSTOMER],
                    }
                    for i, u in enumerate(project_uuids)
                ],
            )
            resources = [uuid_lib.uuid4() for _ in range(len(project_ids) * RESOURCES_PER_PROJECT)]
            await _insert(
                session,
                entities,
                [
                    {"uuid": u, "type": "resource", "name": "r", "parent_id": project_ids[i // RESOURCES_PER_PROJECT]}
                    for i, u in enumerate(resources)
                ],
            )
            await _insert(
                session,
                RoleAssignment.__table__,
                [
                    {
                        "uuid": uuid_lib.uuid4(),
                        "user_id": user_id,
                        "role": "CUSTOMER.OWNER",
                        "entity_id": customer_ids[i % CUSTOMERS],
                        "is_active": True,
                    }
                    for i, user_id in enumerate(user_ids)
                ],
            )
            tokens = [new_pat(int(expires_at.timestamp())) for _ in range(users * per_user)]
            await _insert(
                session,
                PersonalAccessToken.__table__,
                [
                    {
                        "uuid": uuid_lib.uuid4(),
                        "user_id": user_ids[i % users],
                        "name": f"crowd-{i}",
                        "token_prefix": display_prefix(token),
                        "token_hash": runtime.keyring.token_hash(token),
                        "scopes": ["RESOURCE.UPDATE"],
                        "allowed_scopes": [{"type": "customer", "uuid": str(customer_uuids[(i % users) % CUSTOMERS])}],
                        "allowed_networks": [],
                        "expires_at": expires_at,
                        "is_active": True,
                        "use_count": 0,
                    }
                    for i, token in enumerate(tokens)
                ],
            )
        # statistics, as autovacuum would gather them: without them PostgreSQL plans a poll's `updated_at >= :since`
        # over 100,000 fresh rows as a sequential scan, 12 ms a poll (this machine's server runs with autovacuum off)
        async with runtime.session() as session:
            await session.execute(text("ANALYZE"))
        unknown = [new_pat(int(expires_at.timestamp())) for _ in range(len(tokens))]
        parents: dict[str, str | None] = {str(u): None for u in customer_uuids}
        parents.update({str(u): str(customer_uuids[i // PROJECTS_PER_CUSTOMER]) for i, u in enumerate(project_uuids)})
        parents.update({str(u): str(project_uuids[i // RESOURCES_PER_PROJECT]) for i, u in enumerate(resources)})
        owners = {str(user_id): str(customer_uuids[i % CUSTOMERS]) for i, user_id in enumerate(user_ids)}
        groups = [(i % users) % CUSTOMERS for i in range(len(tokens))]
        return Crowd(url, tokens, groups, unknown, [str(u) for u in resources], user_ids, customer_ids, parents, owners)
    finally:
        await runtime.alchemy.get_engine().dispose()


# -- churn ---------------------------------------------------------------------------------------------------------


class Churn:
    """A process that makes changes in the crowd's tree when told to, started (and ready) before any is timed.

    Its start-up (imports, an engine, a first connection) costs more CPU than a timed slice lasts on a small
    machine, so it happens once, before the first round: :meth:`start` tells the ready process to make ``rate``
    project registrations and role grants per second each for ``duration`` seconds, :meth:`made` waits for that to
    end and says how many it made.
    """

    def __init__(self, crowd: Crowd) -> None:
        spec = {"url": crowd.url, "users": crowd.user_ids, "customers": crowd.customer_ids}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(spec, handle)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.crowd", handle.name],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("ready")

    def _expect(self, word: str) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.startswith(word):
            raise RuntimeError(f"churn process: expected {word!r}, got {line!r} (exit code {self._process.poll()})")
        return line

    def start(self, rate: float, duration: float) -> None:
        """Begin ``rate`` changes a second for ``duration`` seconds (without waiting for them)."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"{rate} {duration}\n")
        self._process.stdin.flush()

    def made(self) -> int:
        """Wait for the changes begun by :meth:`start` to end; how many were made."""
        return int(self._expect("made").split()[1])

    def close(self) -> None:
        """Stop the process (it ends when its input does)."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=60)


def _sync_url(url: str) -> str:
    """The service's async database URL with a synchronous driver, for the churn process."""
    return url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")


_ONE_CHANGE_ON_POSTGRES = """
WITH project AS (
    INSERT INTO entity (uuid, type, name, parent_id, created_at, updated_at)
    VALUES (:project, 'project', 'churn', :customer, now(), now())
    RETURNING id
), assignment AS (
    INSERT INTO role_assignment (uuid, user_id, role, entity_id, is_active, created_at, updated_at)
    SELECT :assignment, :user, 'PROJECT.MANAGER', id, true, now(), now() FROM project
    RETURNING 1
)
SELECT pg_notify(:channel, :payload) FROM assignment
"""
"""A project registered, a role granted on it and the workers notified: one statement, one transaction."""


def _serve(spec: dict[str, Any]) -> None:
    """Say ``ready`` once connected; then, for each ``RATE SECONDS`` line read, churn and say ``made N``.

    The changes stand for another instance's, which spends its own machine's CPU on them: here they share the two
    CPUs with the workers and the load generator, so they are made as cheaply as the database allows. On
    PostgreSQL that is one statement in autocommit (0.26 ms of CPU a change, against 1.3 ms for a transaction of
    three Core statements); SQLite cannot insert in a ``WITH``, so there it is two Core inserts in a transaction
    (0.5 ms, against 3 ms through the service's ORM session).
    """
    from sqlalchemy import create_engine, insert, text
    from sqlalchemy.exc import OperationalError

    from service.authz.models import RoleAssignment
    from service.broadcast import CHANNEL, FACTS
    from service.entities.models import Entity

    engine = create_engine(_sync_url(spec["url"]))
    register = insert(Entity.__table__).returning(Entity.__table__.c.id)
    grant = insert(RoleAssignment.__table__)
    one_change = text(_ONE_CHANGE_ON_POSTGRES)
    autocommit = (
        engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if engine.dialect.name == "postgresql"
        else None
    )

    def change() -> None:
        """Register a project under a random customer and grant a random user a role on it."""
        customer, user = random.choice(spec["customers"]), random.choice(spec["users"])
        if autocommit is not None:
            autocommit.execute(
                one_change,
                {
                    "project": uuid_lib.uuid4(),
                    "customer": customer,
                    "assignment": uuid_lib.uuid4(),
                    "user": user,
                    "channel": CHANNEL,
                    "payload": f"bench {FACTS} ",
                },
            )
            return
        with engine.begin() as connection:
            project = connection.execute(
                register, {"uuid": uuid_lib.uuid4(), "type": "project", "name": "churn", "parent_id": customer}
            ).scalar_one()
            connection.execute(
                grant,
                {
                    "uuid": uuid_lib.uuid4(),
                    "user_id": user,
                    "role": "PROJECT.MANAGER",
                    "entity_id": project,
                    "is_active": True,
                },
            )

    def churn_for(rate: float, duration: float) -> int:
        """``rate`` changes a second for ``duration`` seconds; how many were made."""
        interval, deadline, made = 1 / rate, time.monotonic() + duration, 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                change()
            except OperationalError:  # SQLite busy with a worker's write past its timeout: skip this one
                pass
            else:
                made += 1
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        return made

    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        print("ready", flush=True)
        while line := sys.stdin.readline():
            rate, duration = map(float, line.split())
            print("made", churn_for(rate, duration), flush=True)
    finally:
        if autocommit is not None:
            autocommit.close()
        engine.dispose()


if __name__ == "__main__":
    spec_path = Path(sys.argv[1])
    churn_spec = json.loads(spec_path.read_text())
    spec_path.unlink()
    _serve(churn_spec)
