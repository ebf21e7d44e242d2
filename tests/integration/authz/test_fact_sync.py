"""Facts stay in sync: a restarted worker (or a full reload) decides exactly as the one that saw the changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import delete, event, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.app import create_app
from service.authz import sync as sync_module
from service.authz.models import RoleAssignment
from service.authz.sync import FactSync, FactWatcher
from service.config import Settings
from service.entities.models import DELETION_RETENTION, Entity, EntityDeletion
from service.policy.facts import Subject
from service.runtime import Runtime
from tests.support.app import http_client, running
from tests.support.factories import delete_entity, grant, make_entity, revoke
from tests.support.world import Caller, Tree, make_caller

PERMISSIONS = [
    "CUSTOMER.UPDATE",
    "PROJECT.UPDATE",
    "RESOURCE.LIST",
    "RESOURCE.TERMINATE",
    "OFFERING.UPDATE",
    "ORDER.LIST",
]

Matrix = dict[tuple[str, str, str], tuple[bool, str, str]]


async def decisions(client: httpx.AsyncClient, callers: dict[str, Caller], entities: dict[str, Entity]) -> Matrix:
    """Every (caller, permission, entity) decision as ``(allowed, clause, reason)``, asked through HTTP."""
    matrix: Matrix = {}
    for who, caller in callers.items():
        for permission in PERMISSIONS:
            for name, entity in entities.items():
                response = await client.post(
                    "/api/authz/check/",
                    headers=caller.headers,
                    json={"permission": permission, "entity": {"type": entity.type, "uuid": str(entity.uuid)}},
                )
                if response.status_code == 404:  # holds nothing near it: as if it did not exist
                    matrix[(who, permission, name)] = (False, "not-found", response.json()["detail"])
                    continue
                assert response.status_code == 200, response.text
                body = response.json()
                matrix[(who, permission, name)] = (body["allowed"], body["clause"], body["reason"])
    return matrix


async def history(
    client: httpx.AsyncClient, runtime: Runtime, tree: Tree, staff: Caller
) -> tuple[dict[str, Caller], dict[str, Entity]]:
    """Grants, a revocation, an expiry still ahead, a move, a rename and a deletion, all through the services/API."""
    callers = {name: await make_caller(runtime, name) for name in ("alice", "bob", "carol", "dave")}
    await grant(runtime, callers["alice"].user, "CUSTOMER.OWNER", tree.acme)
    await grant(runtime, callers["bob"].user, "PROJECT.MANAGER", tree.web)
    revoked = await grant(runtime, callers["bob"].user, "CUSTOMER.OWNER", tree.initech)
    await revoke(runtime, revoked)
    await grant(
        runtime,
        callers["carol"].user,
        "PROJECT.ADMIN",
        tree.billing,
        expiration_time=datetime.now(UTC) + timedelta(hours=1),
    )
    await grant(runtime, callers["dave"].user, "OFFERING.MANAGER", tree.shop)
    extra = await make_entity(runtime, "resource", "extra", parent=tree.data)
    moved = await client.patch(
        f"/api/entities/{tree.data.uuid}/", headers=staff.headers, json={"parent": str(tree.initech.uuid)}
    )
    assert moved.status_code == 200, moved.text
    deleted = await client.delete(f"/api/entities/{tree.billing_db.uuid}/", headers=staff.headers)
    assert deleted.status_code == 204
    callers["staff"] = await make_caller(runtime, "root2", staff=True)
    entities = {name: tree[name] for name in Tree.__dataclass_fields__ if name != "billing_db"}
    entities["extra"] = extra
    return callers, entities


async def test_a_restarted_app_decides_as_before(
    client: httpx.AsyncClient,
    settings: Settings,
    runtime: Runtime,
    tree: Tree,
    staff: Caller,
) -> None:
    callers, entities = await history(client, runtime, tree, staff)
    before = await decisions(client, callers, entities)
    assert before[("alice", "PROJECT.UPDATE", "web")][0] is True
    assert before[("alice", "PROJECT.UPDATE", "data")][0] is False  # data moved to initech
    assert before[("bob", "CUSTOMER.UPDATE", "initech")][0] is False  # revoked
    assert before[("carol", "RESOURCE.TERMINATE", "billing")][0] is True
    assert before[("dave", "OFFERING.UPDATE", "shop")][0] is True

    restarted: Litestar = create_app(settings)
    try:
        assert restarted.state.runtime is not runtime
        async with running(restarted), http_client(restarted) as fresh:
            after = await decisions(fresh, callers, entities)
            ancestors = {
                name: restarted.state.runtime.policy.ancestors(str(entity.uuid)) for name, entity in entities.items()
            }
            gone = await fresh.post(
                "/api/authz/check/",
                headers=callers["staff"].headers,
                json={"permission": "RESOURCE.LIST", "entity": {"type": "resource", "uuid": str(tree.billing_db.uuid)}},
            )
    finally:
        await restarted.state.runtime.alchemy.get_engine().dispose()
    assert after == before
    assert ancestors == {name: runtime.policy.ancestors(str(entity.uuid)) for name, entity in entities.items()}
    assert ancestors["extra"] == [str(entities["extra"].uuid), str(tree.data.uuid), str(tree.initech.uuid)]
    assert gone.status_code == 404


async def test_load_all_rebuilds_the_same_facts(
    client: httpx.AsyncClient,
    runtime: Runtime,
    tree: Tree,
    staff: Caller,
) -> None:
    callers, entities = await history(client, runtime, tree, staff)
    before = await decisions(client, callers, entities)
    runtime.policy.replace_facts([], [])
    # checked before the next await: the background FactWatcher may resynchronise at any await point
    assert runtime.policy.ancestors(str(tree.web.uuid)) == []
    assert not runtime.policy.holds(callers["alice"].user.id, False, "PROJECT.UPDATE", str(tree.web.uuid))
    await FactSync(runtime).load_all()
    assert runtime.policy.holds(callers["alice"].user.id, False, "PROJECT.UPDATE", str(tree.web.uuid))
    assert await decisions(client, callers, entities) == before


async def test_a_deletion_elsewhere_is_read_from_its_record_without_reading_every_uuid(
    settings: Settings, runtime: Runtime, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B (its own runtime, polled by hand) follows A's registrations and deletions from the changed rows and the
    deletions recorded, and compares no uuids (until the full check is due: which shows the full read is seen)."""
    other = Runtime.build(settings)
    full_reads: list[str] = []

    def note_full_reads(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if " ".join(statement.split()).startswith("SELECT entity.id, CAST(entity.uuid AS"):
            full_reads.append(statement)

    engine = other.alchemy.get_engine().sync_engine
    event.listen(engine, "before_cursor_execute", note_full_reads)
    try:
        await FactSync(other).load_all()
        watcher = FactWatcher(other)
        doomed = await make_entity(runtime, "resource", "doomed", parent=tree.web)
        await watcher.poll()
        assert other.policy.entity(str(doomed.uuid)) is not None

        await delete_entity(runtime, doomed)
        newcomer = await make_entity(runtime, "resource", "newcomer", parent=tree.web)
        await watcher.poll()
        assert other.policy.entity(str(doomed.uuid)) is None
        assert other.policy.entity(str(newcomer.uuid)) is not None
        assert other.policy.entity_uuids() == runtime.policy.entity_uuids()
        assert full_reads == []

        monkeypatch.setattr(FactWatcher, "FULL_CHECK", timedelta(0))
        await watcher.poll()
        assert len(full_reads) == 1  # one chunk: far fewer than UUID_CHUNK entities here
    finally:
        event.remove(engine, "before_cursor_execute", note_full_reads)
        await other.alchemy.get_engine().dispose()


async def test_a_deletion_is_recorded_and_records_older_than_the_retention_go_at_the_next(
    runtime: Runtime, tree: Tree
) -> None:
    first = await make_entity(runtime, "resource", "first", parent=tree.web)
    second = await make_entity(runtime, "resource", "second", parent=tree.web)
    await delete_entity(runtime, first)
    async with runtime.session() as session:
        assert (await session.execute(select(EntityDeletion.uuid))).scalars().all() == [first.uuid]
        stale = datetime.now(UTC) - DELETION_RETENTION - timedelta(minutes=1)
        await session.execute(update(EntityDeletion).values(updated_at=stale))
    await delete_entity(runtime, second)
    async with runtime.session() as session:
        assert (await session.execute(select(EntityDeletion.uuid))).scalars().all() == [second.uuid]


async def _delete_straight(runtime: Runtime, entity: Entity) -> None:
    """Delete an entity's row in the database, around the service (no deletion is recorded)."""
    async with runtime.session() as session:
        await session.execute(delete(Entity).where(Entity.id == entity.id))


async def test_a_woken_poll_looks_back_a_little_and_the_scheduled_poll_finds_what_it_missed(
    settings: Settings, runtime: Runtime, tree: Tree
) -> None:
    other = Runtime.build(settings)
    try:
        await FactSync(other).load_all()
        watcher = FactWatcher(other)
        await watcher.poll()
        fresh = await make_entity(runtime, "resource", "fresh", parent=tree.web)
        await watcher.poll_recent()
        assert other.policy.entity(str(fresh.uuid)) is not None  # announced moments after it was made: found

        late = await make_entity(runtime, "resource", "late", parent=tree.web)
        dated = datetime.now(UTC) - FactWatcher.RECENT_OVERLAP - timedelta(seconds=2)  # a writer whose clock lags
        async with runtime.session() as session:
            await session.execute(update(Entity).where(Entity.id == late.id).values(updated_at=dated))
        await watcher.poll_recent()
        assert other.policy.entity(str(late.uuid)) is None
        await watcher.poll()
        assert other.policy.entity(str(late.uuid)) is not None
    finally:
        await other.alchemy.get_engine().dispose()


@pytest.mark.parametrize("polled_between", [True, False], ids=["polled-between", "comeback-in-one-poll"])
async def test_a_role_revoked_just_before_its_entity_was_deleted_elsewhere_never_comes_back(
    settings: Settings, runtime: Runtime, tree: Tree, polled_between: bool
) -> None:
    """The deletion takes the revoked assignment's row with it, so no poll sees the revocation; the uuid then comes
    back (a host system's uuid is kept), after B polled or before (B then reads the new registration and the
    deletion in one poll, keeps the entity, and must still drop the deleted one's roles)."""
    other = Runtime.build(settings)
    try:
        bob = await make_caller(runtime, "bob")
        project = await make_entity(runtime, "project", "p", parent=tree.acme)
        held = await grant(runtime, bob.user, "PROJECT.MANAGER", project)
        watcher = FactWatcher(other)
        await watcher.load_all()
        assert other.policy.holds(bob.user.id, False, "PROJECT.UPDATE", str(project.uuid))
        await revoke(runtime, held)
        await delete_entity(runtime, project)
        if polled_between:
            await watcher.poll()
            assert other.policy.assignment(str(held.uuid)) is None
        again = await make_entity(runtime, "project", "p", parent=tree.acme, uuid=project.uuid)
        assert not runtime.policy.holds(bob.user.id, False, "PROJECT.UPDATE", str(again.uuid))  # A: revoked
        await watcher.poll()
        assert other.policy.entity(str(again.uuid)) is not None
        assert other.policy.assignment(str(held.uuid)) is None
        assert not other.policy.holds(bob.user.id, False, "PROJECT.UPDATE", str(again.uuid))
    finally:
        await other.alchemy.get_engine().dispose()


async def test_a_deletion_dated_before_the_entitys_last_change_still_forgets_it(
    settings: Settings, runtime: Runtime, tree: Tree
) -> None:
    """The entity was last renamed by an instance whose clock leads the deleter's by 3 s: the deletion's record is
    dated before the version B mirrors. (Counting the entities found it at the next poll; nothing but the full
    comparison, up to FULL_CHECK later, does now.)"""
    other = Runtime.build(settings)
    try:
        doomed = await make_entity(runtime, "resource", "doomed", parent=tree.web)
        watcher = FactWatcher(other)
        await watcher.load_all()
        ahead = datetime.now(UTC) + timedelta(seconds=3)
        async with runtime.session() as session:
            await session.execute(update(Entity).where(Entity.id == doomed.id).values(name="renamed", updated_at=ahead))
        await watcher.poll()
        assert other.policy.entity(str(doomed.uuid)) is not None
        await delete_entity(runtime, doomed)
        await watcher.poll()
        assert other.policy.entity(str(doomed.uuid)) is None
    finally:
        await other.alchemy.get_engine().dispose()


async def test_a_deletion_made_straight_in_the_database_is_found_by_the_full_check(
    settings: Settings, runtime: Runtime, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No deletion is recorded for it, so only the comparison of every uuid finds it."""
    monkeypatch.setattr(FactWatcher, "FULL_CHECK", timedelta(seconds=0.5))
    other = Runtime.build(settings)
    try:
        doomed = await make_entity(runtime, "resource", "doomed", parent=tree.web)
        watcher = FactWatcher(other)
        await watcher.load_all()
        await _delete_straight(runtime, doomed)
        await watcher.poll()
        assert other.policy.entity(str(doomed.uuid)) is not None  # nothing recorded: not found yet
        await asyncio.sleep(0.6)
        await watcher.poll()
        assert other.policy.entity(str(doomed.uuid)) is None
    finally:
        await other.alchemy.get_engine().dispose()


async def test_a_deletion_around_the_service_is_found_though_another_row_was_never_mirrored(
    settings: Settings, runtime: Runtime, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration dated more than OVERLAP before its commit (a slow transaction, a host's import keeping its own
    dates) is never read by B's polls; then a project is deleted straight in the database, with the role held on
    it. The entities are as many as B mirrors, so a check that read the uuids only when the numbers differ would
    keep the deleted project, and the role on it, for good: every uuid is compared."""
    monkeypatch.setattr(FactWatcher, "FULL_CHECK", timedelta(0))
    other = Runtime.build(settings)
    try:
        watcher = FactWatcher(other)
        await watcher.load_all()
        mallory = await make_caller(runtime, "mallory")
        doomed = await make_entity(runtime, "project", "doomed", parent=tree.acme)
        held = await grant(runtime, mallory.user, "PROJECT.MANAGER", doomed)
        await watcher.poll()
        subject = Subject(mallory.user.id, False)
        assert other.policy.decide(subject, "PROJECT.UPDATE", str(doomed.uuid)).allowed

        late = await make_entity(runtime, "resource", "late", parent=tree.web)
        async with runtime.session() as session:  # committed long after it was dated
            dated = datetime.now(UTC) - timedelta(minutes=5)
            await session.execute(update(Entity).where(Entity.id == late.id).values(updated_at=dated))
        async with runtime.session() as session:  # around the service: no entity_deletion record
            await session.execute(delete(RoleAssignment).where(RoleAssignment.id == held.id))
            await session.execute(delete(Entity).where(Entity.id == doomed.id))

        await watcher.poll()
        assert other.policy.entity(str(doomed.uuid)) is None
        assert not other.policy.decide(subject, "PROJECT.UPDATE", str(doomed.uuid)).allowed
    finally:
        await other.alchemy.get_engine().dispose()


@pytest.mark.parametrize("tree_dated_back", [False, True], ids=["cycle-in-one-poll", "cycle-against-the-mirror"])
async def test_a_cycle_written_around_the_service_forgets_the_entity_and_polls_go_on(
    settings: Settings, runtime: Runtime, tree: Tree, tree_dated_back: bool
) -> None:
    """web is made a child of its own resource, straight in the database: B forgets web (its resource no longer
    inherits acme's roles), and its polls still apply what changes next. The resource's row is read in the same
    poll, or (dated back) only mirrored."""
    other = Runtime.build(settings)
    try:
        if tree_dated_back:
            async with runtime.session() as session:
                await session.execute(update(Entity).values(updated_at=datetime.now(UTC) - timedelta(hours=1)))
        watcher = FactWatcher(other)
        await watcher.load_all()
        owner = await make_caller(runtime, "owner")
        await grant(runtime, owner.user, "CUSTOMER.OWNER", tree.acme)
        await watcher.poll()
        subject = Subject(owner.user.id, False)
        assert other.policy.decide(subject, "RESOURCE.UPDATE", str(tree.web_vm.uuid)).allowed
        async with runtime.session() as session:
            await session.execute(
                update(Entity)
                .where(Entity.id == tree.web.id)
                .values(parent_id=tree.web_vm.id, updated_at=datetime.now(UTC))
            )
        await watcher.poll()
        assert other.policy.entity(str(tree.web.uuid)) is None
        assert not other.policy.decide(subject, "RESOURCE.UPDATE", str(tree.web_vm.uuid)).allowed
        newcomer = await make_entity(runtime, "resource", "newcomer", parent=tree.data)
        await watcher.poll()
        assert other.policy.entity(str(newcomer.uuid)) is not None
    finally:
        await other.alchemy.get_engine().dispose()


async def test_a_change_made_while_start_up_continues_after_the_load_is_read(
    settings: Settings, runtime: Runtime, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up after the load (listening, the first credential poll) may outlast the overlap."""
    monkeypatch.setattr(FactWatcher, "OVERLAP", timedelta(seconds=0.3))
    other = Runtime.build(settings)
    try:
        bob = await make_caller(runtime, "bob")
        held = await grant(runtime, bob.user, "PROJECT.MANAGER", tree.web)
        watcher = FactWatcher(other)
        await watcher.load_all()
        await revoke(runtime, held)
        await asyncio.sleep(0.5)  # the rest of start-up outlasts the overlap
        await watcher.poll()
        assert not other.policy.holds(bob.user.id, False, "PROJECT.UPDATE", str(tree.web.uuid))
    finally:
        await other.alchemy.get_engine().dispose()


def hook_after_read(
    watcher: FactWatcher, monkeypatch: pytest.MonkeyPatch, nth: int, act: Callable[[], Awaitable[None]]
) -> Callable[[], bool]:
    """Run ``act`` as the ``nth`` connection the watcher reads through closes (its reads done, their use not yet)."""
    opened = 0
    real = watcher._reader

    class Hooked:
        @asynccontextmanager
        async def connect(self) -> AsyncIterator[AsyncConnection]:
            nonlocal opened
            opened += 1
            mine = opened == nth
            async with real.connect() as inner:
                yield inner
            if mine:
                await act()

    monkeypatch.setattr(watcher, "_reader", Hooked())
    return lambda: opened >= nth


async def test_an_entity_this_worker_deletes_while_its_own_poll_reads_stays_deleted(
    settings: Settings, runtime: Runtime, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poll read the entity's row before the deletion, and applies it after."""
    other = Runtime.build(settings)
    try:
        doomed = await make_entity(runtime, "resource", "doomed", parent=tree.web)
        watcher = FactWatcher(other)
        await watcher.load_all()
        assert other.policy.entity(str(doomed.uuid)) is not None
        reached = hook_after_read(watcher, monkeypatch, 1, lambda: delete_entity(other, doomed))
        await watcher.poll()
        assert reached()
        assert other.policy.entity(str(doomed.uuid)) is None
        again = await make_entity(other, "resource", "doomed", parent=tree.web, uuid=doomed.uuid)
        assert other.policy.entity(str(again.uuid)) is not None  # registered anew here: mirrored at once
    finally:
        await other.alchemy.get_engine().dispose()


async def test_an_entity_this_worker_registers_while_its_poll_reads_every_uuid_stays(
    settings: Settings, runtime: Runtime, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FactWatcher, "FULL_CHECK", timedelta(0))
    other = Runtime.build(settings)
    try:
        watcher = FactWatcher(other)
        await watcher.load_all()
        made: list[Entity] = []

        async def register_through_other() -> None:
            made.append(await make_entity(other, "resource", "newcomer", parent=tree.web))

        reached = hook_after_read(watcher, monkeypatch, 2, register_through_other)  # the second: every uuid
        await watcher.poll()
        assert reached()
        assert other.policy.entity(str(made[0].uuid)) is not None
    finally:
        await other.alchemy.get_engine().dispose()


async def test_every_uuid_is_compared_a_chunk_at_a_time(
    settings: Settings, runtime: Runtime, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deletions elsewhere are found in every chunk, the last (short) one included."""
    monkeypatch.setattr(sync_module, "UUID_CHUNK", 2)
    monkeypatch.setattr(FactWatcher, "FULL_CHECK", timedelta(0))
    other = Runtime.build(settings)
    try:
        made = [await make_entity(runtime, "resource", f"r{n}", parent=tree.web) for n in range(5)]
        watcher = FactWatcher(other)
        await watcher.load_all()
        doomed = [made[0], made[3], made[4]]
        for entity in doomed:
            await _delete_straight(runtime, entity)  # no record: only the comparison finds them
        await watcher.poll()
        assert [other.policy.entity(str(e.uuid)) is None for e in made] == [True, False, False, True, True]
        assert other.policy.entity_uuids() == runtime.policy.entity_uuids() - {str(e.uuid) for e in doomed}
    finally:
        await other.alchemy.get_engine().dispose()
