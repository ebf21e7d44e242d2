"""The verification cache: reloads, eviction and revocation keep it exact."""

from __future__ import annotations

import asyncio
import time as real_time
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update

from service.bounded import FifoMap
from service.crypto import new_pat
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.security import sync as sync_module
from service.security import verifier as verifier_module
from service.security.principal import Principal
from service.users.models import User
from tests.support.factories import auth
from tests.support.pats import PATS, check, create_pat
from tests.support.world import World


def auth_header(token: str) -> bytes:
    return f"Token {token}".encode()


async def principal_of(runtime: Runtime, token: str) -> Principal | None:
    """Who ``token`` authenticates as, through the verifier (None: refused)."""
    credential = await runtime.verifier.verify(auth_header(token), "127.0.0.1", None)
    return credential.principal if credential is not None else None


async def test_reload_keeps_an_unchanged_principal_and_a_poll_sees_a_changed_one(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers)
    await asyncio.sleep(2 * runtime.settings.sync_interval_seconds)  # past the poll that notices the new row
    first = await principal_of(runtime, created["token"])
    runtime.verifier.confirm(0.0, 0.0)  # the cache is not trusted until the next poll: the token is looked up again
    again = await principal_of(runtime, created["token"])
    assert first is not None
    assert again is first
    async with runtime.session() as session:  # behind the service's back: as another worker would, unannounced
        await session.execute(update(User).where(User.id == world.owner.id).values(username="renamed"))
    deadline = real_time.monotonic() + 1.0
    changed = first
    while changed is first:  # the poll of changed users drops the entry; the next verification reloads it
        assert real_time.monotonic() < deadline, "the changed user was not noticed within 1 s"
        await asyncio.sleep(0.05)
        changed = await principal_of(runtime, created["token"])
    assert changed is not None
    assert changed.username == "renamed"


async def test_revoking_a_token_evicted_from_a_full_cache(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.verifier, "_cache", FifoMap(1))
    evicted = await create_pat(client, world.owner_headers, name="evicted")
    cached = await create_pat(client, world.owner_headers, name="cached")
    for token in (evicted["token"], cached["token"]):  # the second pushes the first out
        assert (await check(client, token, "PROJECT.UPDATE", "project", world.project)).status_code == 200
    for created in (evicted, cached):
        response = await client.delete(f"{PATS}{created['uuid']}/", headers=world.owner_headers)
        assert response.status_code == 204, response.text
        answer = await client.get(PATS, headers=auth(created["token"]))
        assert answer.status_code == 401
        assert answer.json() == {"detail": "Invalid token."}


class Clock:
    """Stands in for the ``time`` module in the verifier and its poller: real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return real_time.time() + self.offset


async def test_a_token_used_at_full_speed_still_stops_at_its_expiry(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    expiry = int(real_time.time()) + 86_400  # a whole second, as PATs carry their expiry
    created = await create_pat(client, world.owner_headers, expires_at=datetime.fromtimestamp(expiry, UTC).isoformat())
    clock = Clock()
    monkeypatch.setattr(verifier_module, "time", clock)
    monkeypatch.setattr(sync_module, "time", clock)
    clock.offset = expiry - real_time.time() - 0.2  # a moment before the expiry
    runtime.verifier.confirm(clock.time(), 60.0)  # as a poll at that time would
    for _ in range(3):  # the second and third repeat the first: answered from the cache
        assert (await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)).status_code == 200
    clock.offset += 0.3  # past the expiry, while the cache entry is still fresh
    answer = await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)
    assert answer.status_code == 401
    assert answer.json() == {"detail": "Invalid token."}


async def test_a_clock_stepped_back_makes_the_cache_untrusted_not_longer_trusted(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_pat(client, world.owner_headers)
    await asyncio.sleep(2 * runtime.settings.sync_interval_seconds)  # past the poll that notices the new rows
    clock = Clock()
    monkeypatch.setattr(verifier_module, "time", clock)
    loads = 0
    load = runtime.verifier._load

    async def counting_load(*args: Any) -> Any:
        nonlocal loads
        loads += 1
        return await load(*args)

    monkeypatch.setattr(runtime.verifier, "_load", counting_load)
    for _ in range(3):
        assert (await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)).status_code == 200
    assert loads == 1
    clock.offset = -3600  # NTP steps the clock back an hour: entries loaded "in the future" are looked up again
    assert (await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)).status_code == 200
    assert loads == 2


async def test_token_and_bearer_forms_work_alike_and_one_revocation_refuses_both(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers)
    forms = [f"Token {created['token']}", f"Bearer {created['token']}", f"token  {created['token']}"]
    for form in forms * 2:
        response = await client.get(PATS, headers={"Authorization": form})
        assert response.status_code == 200, (form, response.text)
    response = await client.delete(f"{PATS}{created['uuid']}/", headers=world.owner_headers)
    assert response.status_code == 204, response.text
    for form in forms:
        answer = await client.get(PATS, headers={"Authorization": form})
        assert answer.status_code == 401
        assert answer.json() == {"detail": "Invalid token."}
    await runtime.usage.flush()
    async with runtime.session() as session:
        token_hash = runtime.keyring.token_hash(created["token"])
        uses = await session.scalar(
            select(PersonalAccessToken.use_count).where(PersonalAccessToken.token_hash == token_hash)
        )
    assert uses == 6


async def test_uses_repeated_from_the_cache_are_all_counted_across_flushes(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers)
    token_hash = runtime.keyring.token_hash(created["token"])

    async def uses() -> tuple[int, Any]:
        await runtime.usage.flush()
        async with runtime.session() as session:
            row = (
                await session.execute(
                    select(PersonalAccessToken.use_count, PersonalAccessToken.last_used_at).where(
                        PersonalAccessToken.token_hash == token_hash
                    )
                )
            ).one()
        return row[0], row[1]

    for _ in range(3):
        assert (await client.get(PATS, headers=auth(created["token"]))).status_code == 200
    count, first_seen = await uses()
    assert count == 3
    assert first_seen is not None
    verified = runtime.verifier.verify
    runtime.verifier.verify = None  # type: ignore[assignment,method-assign]  # a repeat after a flush needs none
    # as a credential poll now would: on a loaded machine the background poll may lapse (then any repeat verifies)
    runtime.verifier.confirm(real_time.time(), 60.0)
    try:
        for _ in range(2):
            assert (await client.get(PATS, headers=auth(created["token"]))).status_code == 200
    finally:
        runtime.verifier.verify = verified  # type: ignore[method-assign]
    count, last_seen = await uses()
    assert count == 5
    assert last_seen >= first_seen
    async with runtime.session() as session:
        address = await session.scalar(
            select(PersonalAccessToken.last_used_ip).where(PersonalAccessToken.token_hash == token_hash)
        )
    assert address == "127.0.0.1"


async def test_use_does_not_move_a_pats_updated_at(client: AsyncClient, world: World, runtime: Runtime) -> None:
    """Other workers drop cached verifications of rows whose ``updated_at`` moved: use is no change."""
    created = await create_pat(client, world.owner_headers)
    token_hash = runtime.keyring.token_hash(created["token"])
    query = select(PersonalAccessToken.updated_at, PersonalAccessToken.use_count).where(
        PersonalAccessToken.token_hash == token_hash
    )
    async with runtime.session() as session:
        before = (await session.execute(query)).one()
    assert (await client.get(PATS, headers=auth(created["token"]))).status_code == 200
    await runtime.usage.flush()
    async with runtime.session() as session:
        after = (await session.execute(query)).one()
    assert after.use_count == before.use_count + 1
    assert after.updated_at == before.updated_at


async def test_concurrent_misses_for_one_token_share_one_lookup_and_leave_no_connection_out(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_pat(client, world.owner_headers)
    lookups = count_lookups(monkeypatch)
    runtime.verifier.forget_token(runtime.keyring.token_hash(created["token"]))
    principals = await asyncio.gather(*(principal_of(runtime, created["token"]) for _ in range(8)))
    assert [principal.user_id if principal else None for principal in principals] == [world.owner.id] * 8
    assert len(lookups) == 1
    pool = runtime.alchemy.get_engine().pool
    deadline = real_time.monotonic() + 1.0
    while pool.checkedout():  # background polls return theirs at once; a lookup that kept one never would
        assert real_time.monotonic() < deadline, "a connection stayed checked out"
        await asyncio.sleep(0.01)


async def test_a_refused_token_is_refused_from_memory_for_a_while(
    client: AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups = count_lookups(monkeypatch)
    unknown = auth_header(new_pat(int(real_time.time()) + 3600))  # well-formed, valid checksum, stored nowhere
    for _ in range(3):
        assert await runtime.verifier.verify(unknown, "127.0.0.1", None) is None
    assert len(lookups) == 1
    other = auth_header(new_pat(int(real_time.time()) + 3600))
    monkeypatch.setattr(verifier_module, "REFUSED_TTL_SECONDS", 0.0)  # refusals from now on end at once
    for _ in range(2):
        assert await runtime.verifier.verify(other, "127.0.0.1", None) is None
    assert len(lookups) == 3


async def test_a_flood_of_unknown_tokens_pushes_no_real_token_out(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.verifier, "_refused", FifoMap(4))
    created = await create_pat(client, world.owner_headers)
    await asyncio.sleep(2 * runtime.settings.sync_interval_seconds)  # past the poll that notices the new row
    lookups = count_lookups(monkeypatch)
    assert await runtime.verifier.verify(auth_header(created["token"]), "127.0.0.1", None) is not None
    flood = [auth_header(new_pat(int(real_time.time()) + 3600)) for _ in range(20)]
    for header in flood:
        assert await runtime.verifier.verify(header, "127.0.0.1", None) is None
    assert len(runtime.verifier._refused) == 4  # bounded
    assert await runtime.verifier.verify(auth_header(created["token"]), "127.0.0.1", None) is not None
    assert len(lookups) == 1 + len(flood)  # the real token was not looked up again


async def test_a_refusal_ends_with_a_change_to_the_owner(client: AsyncClient, world: World, runtime: Runtime) -> None:
    created = await create_pat(client, world.owner_headers)
    owner = f"/api/users/{world.owner.uuid}/"
    changed = await client.patch(owner, json={"can_use_personal_access_tokens": False}, headers=world.staff_headers)
    assert changed.status_code == 200, changed.text
    assert (await client.get(PATS, headers=auth(created["token"]))).status_code == 401
    changed = await client.patch(owner, json={"can_use_personal_access_tokens": True}, headers=world.staff_headers)
    assert changed.status_code == 200, changed.text
    assert (await client.get(PATS, headers=auth(created["token"]))).status_code == 200


async def test_tokens_of_one_owner_with_equal_limits_share_one_principal(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    first, second, other = (
        await create_pat(client, world.owner_headers, name="first"),
        await create_pat(client, world.owner_headers, name="second"),
        await create_pat(client, world.owner_headers, name="other", scopes=["PROJECT.UPDATE", "PROJECT.LIST"]),
    )
    principals = [await principal_of(runtime, pat["token"]) for pat in (first, second, other)]
    assert principals[0] is not None
    assert principals[0] is principals[1]
    assert principals[2] is not None
    assert principals[2] is not principals[0]


def count_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Token hashes the verifier looks up in the database from now on."""
    lookups: list[str] = []
    find = verifier_module.find_credential

    async def counting_find(engine: Any, kind: Any, token_hash: str, now: Any) -> Any:
        lookups.append(token_hash)
        return await find(engine, kind, token_hash, now)

    monkeypatch.setattr(verifier_module, "find_credential", counting_find)
    return lookups


async def test_a_change_to_one_owner_keeps_the_other_owners_cached_verifications(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = await create_pat(client, world.owner_headers, name="mine")
    theirs = await create_pat(client, world.staff_headers, name="theirs")
    await asyncio.sleep(2 * runtime.settings.sync_interval_seconds)  # past the poll that notices the new rows
    for pat in (mine, theirs):
        assert await principal_of(runtime, pat["token"]) is not None
    lookups = count_lookups(monkeypatch)
    runtime.verifier.forget_user(world.owner.id)
    assert await principal_of(runtime, theirs["token"]) is not None
    assert lookups == []  # the other owner's entry still answers
    assert await principal_of(runtime, mine["token"]) is not None
    assert len(lookups) == 1  # the changed owner's entry no longer does
    assert await principal_of(runtime, mine["token"]) is not None
    assert len(lookups) == 1  # ... until the lookup made it again


async def test_a_miss_after_a_change_never_takes_the_answer_of_a_lookup_begun_before_it(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent misses share one lookup, but not across a change: the earlier one may have read the old row."""
    pat = await create_pat(client, world.owner_headers, name="mine")
    await asyncio.sleep(2 * runtime.settings.sync_interval_seconds)  # past the poll that notices the new row
    find, read, release = verifier_module.find_credential, asyncio.Event(), asyncio.Event()

    async def held_find(*args: Any) -> Any:
        row = await find(*args)
        read.set()
        await release.wait()
        return row

    monkeypatch.setattr(verifier_module, "find_credential", held_find)
    before = asyncio.ensure_future(principal_of(runtime, pat["token"]))  # reads the row of an active owner
    await read.wait()
    async with runtime.session() as session:
        await session.execute(update(User).where(User.id == world.owner.id).values(is_active=False))
    runtime.verifier.forget_user(world.owner.id)
    after = asyncio.ensure_future(principal_of(runtime, pat["token"]))  # begun after the change
    await asyncio.sleep(0.05)
    release.set()
    assert await before is not None  # it was asked before the change
    assert await after is None
    monkeypatch.setattr(verifier_module, "find_credential", find)
    assert await principal_of(runtime, pat["token"]) is None  # and nothing stale was kept
