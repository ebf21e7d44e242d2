"""Token verification at 1 000 vs 1 000 000 stored PATs, and memory of the verification cache.

Verification is measured on the verifier's cache-miss path (shape and checksum, one HMAC, the lookup by unique
keyed hash and the owner's row): the path a token takes in each worker when it is first used or has changed. Each count
has its own database, measured in turns; filler rows are bulk-inserted with distinct keyed hashes, so the unique
index really holds that many entries.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import statistics
import time
import tracemalloc
import uuid as uuid_lib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

CHUNK = 50_000


@dataclass
class VerifyResult:
    """Median µs per cache-miss verification at each stored-token count."""

    backend: str
    counts: list[int]
    median_us: list[float]

    @property
    def ratio(self) -> float:
        """Time at the largest count over time at the smallest."""
        return self.median_us[-1] / self.median_us[0]


def verification_scaling(
    backend: str, urls: list[str], counts: tuple[int, ...], probes: int = 200, budget_s: float = 3.0, rounds: int = 6
) -> VerifyResult:
    """Fill one database per count (``urls[i]`` to ``counts[i]`` PATs), then time cache-miss verifications of the
    same ``probes`` tokens in each, taking turns for ``rounds`` rounds so that the machine's drift hits all alike."""
    from bench.world import settings_for
    from service.db import upgrade_database

    settings = [settings_for(url) for url in urls]
    for each in settings:
        upgrade_database(each)
    return asyncio.run(_scaling(backend, settings, counts, probes, budget_s, rounds))


async def _scaling(
    backend: str, settings: list[Any], counts: tuple[int, ...], probes: int, budget_s: float, rounds: int
) -> VerifyResult:
    from service.crypto import new_pat
    from service.runtime import Runtime

    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    tokens = [new_pat(int(expires_at.timestamp())) for _ in range(probes)]
    runtimes = [Runtime.build(each) for each in settings]
    try:
        for runtime, each, count in zip(runtimes, settings, counts, strict=True):
            await _store_probes(runtime, tokens, expires_at)
            if count > probes:
                await _fill(runtime, each.database.url, probes, count - probes)
        samples: list[list[float]] = [[] for _ in runtimes]
        for _ in range(rounds):
            for runtime, taken in zip(runtimes, samples, strict=True):
                taken.extend(await _time_misses(runtime, tokens, budget_s / rounds))
        return VerifyResult(backend, list(counts), [statistics.median(taken) * 1e6 for taken in samples])
    finally:
        for runtime in runtimes:
            await runtime.alchemy.get_engine().dispose()


async def _store_probes(runtime: Any, tokens: list[str], expires_at: datetime) -> None:
    from service.crypto import display_prefix
    from service.pats.models import PersonalAccessToken
    from service.users.schemas import UserCreate
    from service.users.services import UserService

    async with runtime.session() as session:
        owner = await UserService(session=session, runtime=runtime).create_user(UserCreate(username="bench-v"))
    async with runtime.session() as session:
        session.add_all(
            PersonalAccessToken(
                user_id=owner.id,
                name="probe",
                token_prefix=display_prefix(t),
                token_hash=runtime.keyring.token_hash(t),
                scopes=["RESOURCE.UPDATE"],
                allowed_scopes=[],
                allowed_networks=[],
                expires_at=expires_at,
                is_active=True,
            )
            for t in tokens
        )


async def _time_misses(runtime: Any, tokens: list[str], budget_s: float) -> list[float]:
    """Seconds per cache-miss verification of ``tokens``, in turn, for ``budget_s`` (after a warm-up)."""
    verifier = runtime.verifier
    from ipaddress import ip_address

    ip = ip_address("127.0.0.1")
    for token in tokens[:20]:  # warm the connection pool and statement caches
        verifier.forget_token(runtime.keyring.token_hash(token))
        assert await verifier.inspect(token, ip) is not None
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline:
        for token in tokens:
            verifier.forget_token(runtime.keyring.token_hash(token))
            start = time.perf_counter()
            principal = await verifier.inspect(token, ip)
            samples.append(time.perf_counter() - start)
            assert principal is not None
    return samples


def _filler_hashes(key: bytes, start: int, n: int) -> list[str]:
    return [hmac.new(key, f"bench-filler-{i}".encode(), hashlib.sha256).hexdigest() for i in range(start, start + n)]


async def _fill(runtime: Any, url: str, start: int, n: int) -> None:
    """Bulk-insert ``n`` filler PATs, copying every column but id, uuid and hash from a probe row."""
    if url.startswith("sqlite"):
        await asyncio.to_thread(_fill_sqlite, url.split(":///", 1)[1], runtime.keyring.hash_key, start, n)
    else:
        await _fill_postgres(url, runtime.keyring.hash_key, start, n)


def _fill_sqlite(path: str, key: bytes, start: int, n: int) -> None:
    import sqlite3

    db = sqlite3.connect(path, timeout=30)
    try:
        cursor = db.execute("SELECT * FROM personal_access_token LIMIT 1")
        columns = [c[0] for c in cursor.description]
        template = dict(zip(columns, cursor.fetchone(), strict=True))
        hyphens = "-" in str(template["uuid"])
        columns.remove("id")
        sql = f"INSERT INTO personal_access_token ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
        db.execute("PRAGMA synchronous=OFF")
        for offset in range(0, n, CHUNK):
            hashes = _filler_hashes(key, start + offset, min(CHUNK, n - offset))
            rows = []
            for token_hash in hashes:
                row = {**template, "token_hash": token_hash, "name": "filler"}
                u = uuid_lib.uuid4()
                row["uuid"] = str(u) if hyphens else u.hex
                rows.append(tuple(row[c] for c in columns))
            db.executemany(sql, rows)
        db.commit()
        db.execute("ANALYZE personal_access_token")
        db.commit()
        # fold the bulk load's write-ahead log into the database: otherwise every page read also searches a WAL of
        # hundreds of MB, and the timing measures how far SQLite's automatic checkpoints happened to get
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


async def _fill_postgres(url: str, key: bytes, start: int, n: int) -> None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        template = await connection.fetchrow("SELECT * FROM personal_access_token LIMIT 1")
        columns = [c for c in template.keys() if c != "id"]
        for offset in range(0, n, CHUNK):
            hashes = _filler_hashes(key, start + offset, min(CHUNK, n - offset))
            records = []
            for token_hash in hashes:
                row = {**dict(template), "token_hash": token_hash, "name": "filler", "uuid": uuid_lib.uuid4()}
                records.append(tuple(row[c] for c in columns))
            await connection.copy_records_to_table("personal_access_token", records=records, columns=columns)
        await connection.execute("ANALYZE personal_access_token")
    finally:
        await connection.close()


# -- memory --------------------------------------------------------------------------------------------------------


@dataclass
class MemoryResult:
    """Bytes the verification cache holds for ``entries`` distinct verified PATs."""

    entries: int
    owners: int
    bytes: int
    plaintext_found: bool
    forget_user_us: float
    """What dropping one owner's cached verifications costs with the cache full (``TokenVerifier.forget_user``)."""

    @property
    def per_entry(self) -> float:
        """Bytes per cached verification."""
        return self.bytes / self.entries


def cache_memory(entries: int = 100_000) -> MemoryResult:
    """Verify ``entries`` distinct PATs of 1,000 owners through :meth:`TokenVerifier.inspect` and measure what the
    cache retains.

    The database is replaced by a map from token hash to the row the lookup would return, encoded before tracing
    and decoded on each lookup (fresh objects, as a database driver makes them), so what is measured is what the
    verifier keeps per cached verification.
    """
    from bench.world import ROOT, SECRET
    from service.config import load_settings
    from service.crypto import new_pat
    from service.runtime import Runtime
    from service.security import verifier as verifier_module

    settings = load_settings(
        path=ROOT / "bench" / "no-such-litestar.toml",
        environ={
            "TOKENGATE_SECURITY__SECRET": SECRET,
            "TOKENGATE_POLICY_DIR": str(ROOT / "policies"),
            "TOKENGATE_DATABASE__URL": "sqlite+aiosqlite:///:memory:",
            "TOKENGATE_TOKENS__VERIFICATION_CACHE_SIZE": str(max(entries, 1)),
        },
    )
    runtime = Runtime.build(settings)
    verifier = runtime.verifier
    expires_at = int((datetime.now(UTC) + timedelta(days=30)).timestamp())
    owners = [(i + 1, str(uuid_lib.uuid4()), f"bench-owner-{i}") for i in range(1_000)]
    customers = [str(uuid_lib.uuid4()) for _ in range(100)]
    tokens = [new_pat(expires_at) for _ in range(entries)]
    rows = {
        runtime.keyring.token_hash(t): json.dumps(
            {
                "id": i + 1,
                "uuid": str(uuid_lib.uuid4()),
                "name": f"bench-{i}",
                "scopes": ["RESOURCE.UPDATE"],
                "allowed_scopes": [{"type": "customer", "uuid": customers[i % len(customers)]}],
                "allowed_networks": [],
                "expires_at": expires_at,
                "is_active": True,
                "grace_until": None,
                "last_used_ip": "127.0.0.1",
                "user_id": owners[i % len(owners)][0],
                "user_uuid": owners[i % len(owners)][1],
                "username": owners[i % len(owners)][2],
                "is_staff": False,
                "user_is_active": True,
                "can_use_personal_access_tokens": True,
            }
        ).encode()
        for i, t in enumerate(tokens)
    }

    def decoded(raw: bytes) -> Any:
        row = json.loads(raw)
        row["uuid"], row["user_uuid"] = uuid_lib.UUID(row["uuid"]), uuid_lib.UUID(row["user_uuid"])
        row["expires_at"] = datetime.fromtimestamp(row["expires_at"], UTC)
        return SimpleNamespace(**row)

    async def find(engine: Any, kind: Any, token_hash: str) -> Any:
        return decoded(rows[token_hash])

    original, verifier_module.find_credential = verifier_module.find_credential, find  # type: ignore[assignment]

    async def fill() -> None:
        for token in tokens:
            assert await verifier.inspect(token, None) is not None

    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        asyncio.run(fill())
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    finally:
        verifier_module.find_credential = original
    cached = verifier._cache.items
    assert len(cached) == entries
    sample = set(tokens[:1000])
    plaintext = any(value in sample for entry in list(cached.values())[:1000] for value in vars_of(entry))
    encoded = {token.encode() for token in sample}
    plaintext = plaintext or any(key in encoded for key in list(cached)[:1000])
    started = time.perf_counter()
    for owner_id, _, _ in owners[:100]:
        verifier.forget_user(owner_id)
    forget_us = (time.perf_counter() - started) / 100 * 1e6
    return MemoryResult(entries, len(owners), after - before, plaintext, forget_us)


def vars_of(entry: Any) -> list[Any]:
    """Every attribute value of a cached credential and of its principal (for the no-plaintext check)."""
    values = [getattr(entry, name) for name in entry.__slots__]
    principal = entry.principal
    values += [getattr(principal, name) for name in principal.__slots__]
    return values
