"""Keeps the policy engine's in-memory facts equal to the database.

At start-up every entity and active assignment is loaded; after each committed change the service refreshes
just the rows it touched, so a role revoked a moment ago is already gone from the next decision in this worker.
Other workers and instances catch up through :class:`FactWatcher`, which polls the rows changed since its last
look (indexed ``updated_at``) every ``sync_interval_seconds``: a change is honoured everywhere within about that
time, on SQLite and PostgreSQL alike. On PostgreSQL the changing worker also NOTIFYs the others, which poll at once
(``service.broadcast``).

Each row's ``updated_at`` is its version: a row read before a newer version was applied (a poll that overlapped a
local revocation, say) is ignored, so a stale read can never bring a revoked role back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    CompoundSelect,
    String,
    bindparam,
    cast,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import aliased

from service.authz.models import RoleAssignment
from service.background import collector_paused
from service.db import reader
from service.db.transaction import AnySession
from service.entities.models import Entity, EntityDeletion
from service.policy import AssignmentFact, EntityFact

if TYPE_CHECKING:
    from service.runtime import Runtime

logger = logging.getLogger("tokengate.facts")

_Parent = aliased(Entity)
ENTITY_ROWS = select(
    cast(Entity.uuid, String).label("uuid"), Entity.type, cast(_Parent.uuid, String).label("parent"), Entity.updated_at
).outerjoin(_Parent, Entity.parent_id == _Parent.id)
"""Each entity's uuid, type, parent's uuid and version (uuids as text: see :func:`spelled`)."""
UUID_CHUNK = 10_000
"""Entity uuids read at a time when every uuid is compared with the mirror."""
_ENTITY_TABLE = Entity.__table__
_UUID_TEXTS = (
    select(_ENTITY_TABLE.c.id, cast(_ENTITY_TABLE.c.uuid, String))
    .where(_ENTITY_TABLE.c.id > bindparam("after"))
    .order_by(_ENTITY_TABLE.c.id)
)
"""The entities' ids and uuids (as text) after the id ``after``, in id order; Core, not the ORM."""
ASSIGNMENT_ROWS = select(
    cast(RoleAssignment.uuid, String).label("uuid"),
    RoleAssignment.user_id,
    RoleAssignment.role,
    cast(Entity.uuid, String).label("entity_uuid"),
    RoleAssignment.expiration_time,
    RoleAssignment.is_active,
    RoleAssignment.updated_at,
).join(Entity, RoleAssignment.entity_id == Entity.id)
"""Each assignment's uuid, user, role, entity uuid, expiry, state and version (uuids as text)."""
_SINCE: BindParameter[datetime] = bindparam("since")
_NO_TEXT, _NO_USER = cast(null(), String), cast(null(), BigInteger)
_NO_EXPIRY, _NO_STATE = cast(null(), RoleAssignment.expiration_time.type), cast(null(), Boolean)
_Referred = aliased(Entity)


def _uuid_of(entity_id: Any) -> Any:
    """The uuid (as text) of the entity ``entity_id`` names, looked up row by row by primary key.

    A join let PostgreSQL's planner, whose statistics never cover the newest rows, estimate a handful of changed
    rows and merge-join them against the whole primary key index: 17 ms a poll at 100,000 entities, where one
    index lookup per changed row costs microseconds.
    """
    return select(cast(_Referred.uuid, String)).where(_Referred.id == entity_id).scalar_subquery()


FACT_CHANGES: CompoundSelect[Any] = union_all(
    select(
        literal_column("'entity'").label("kind"),
        cast(Entity.uuid, String).label("uuid"),
        Entity.type.label("name"),
        _uuid_of(Entity.parent_id).label("on_uuid"),
        _NO_USER.label("user_id"),
        _NO_EXPIRY.label("expires_at"),
        _NO_STATE.label("is_active"),
        Entity.updated_at.label("updated_at"),
    ).where(Entity.updated_at >= _SINCE),
    select(
        literal_column("'assignment'"),
        cast(RoleAssignment.uuid, String),
        RoleAssignment.role,
        _uuid_of(RoleAssignment.entity_id),
        RoleAssignment.user_id,
        RoleAssignment.expiration_time,
        RoleAssignment.is_active,
        RoleAssignment.updated_at,
    ).where(RoleAssignment.updated_at >= _SINCE),
    select(
        literal_column("'deletion'"),
        cast(EntityDeletion.uuid, String),
        _NO_TEXT,
        _NO_TEXT,
        _NO_USER,
        _NO_EXPIRY,
        _NO_STATE,
        EntityDeletion.updated_at,
    ).where(EntityDeletion.updated_at >= _SINCE),
)
"""Every entity, assignment and recorded entity deletion changed ``since``, in one statement (one snapshot):
``(kind, uuid, type or role, parent's or entity's uuid, user id, expiry, state, updated_at)``.

One round trip: a poll of three statements cost 3 ms of a worker's CPU on SQLite even when nothing had changed,
and the poll runs twice a second on every worker (more often when notifications wake it)."""


def spelled(text: str) -> str:
    """A uuid as text (hyphenated or 32 hex digits, either case), spelled as the mirror keys it: lower, hyphenated.

    SQLite stores a uuid as 32 bare hex digits, PostgreSQL's text form is hyphenated; a client may send either.
    Read as text, a row costs about 7 µs on SQLite, where making a ``UUID`` of each uuid and spelling it again
    cost 13.
    """
    if len(text) == 36:
        return text.lower()
    t = text.lower()
    return f"{t[:8]}-{t[8:12]}-{t[12:16]}-{t[16:20]}-{t[20:]}"


def _entity_fact(row: Any) -> EntityFact:
    uuid, entity_type, parent, _ = row
    return EntityFact(uuid=spelled(uuid), type=entity_type, parent=spelled(parent) if parent else None)


def _assignment_fact(row: Any) -> AssignmentFact | None:
    """The fact for an active assignment, None for a revoked one."""
    uuid, user_id, role, entity, expires_at, is_active, _ = row
    if not is_active:
        return None
    return AssignmentFact(uuid=spelled(uuid), user_id=user_id, role=role, entity=spelled(entity), expires_at=expires_at)


def _in_tree_order(facts: list[EntityFact]) -> Iterable[EntityFact]:
    """Parents before children, so the engine can check each parent link as it arrives."""
    by_parent: dict[str | None, list[EntityFact]] = {}
    for fact in facts:
        by_parent.setdefault(fact.parent, []).append(fact)
    known = {fact.uuid for fact in facts}
    queue = [fact for fact in facts if fact.parent is None or fact.parent not in known]
    while queue:
        fact = queue.pop()
        yield fact
        queue.extend(by_parent.get(fact.uuid, []))


class FactSync:
    """Loads facts into ``runtime.policy`` and applies changed rows, newest version wins."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.versions = runtime.fact_versions
        self.refreshed_here = runtime.entities_refreshed_here

    async def load_all(self) -> None:
        """Replace the engine's facts with the database's."""
        async with self.runtime.session() as session:
            entity_rows = (await session.execute(ENTITY_ROWS)).all()
            assignment_rows = (await session.execute(ASSIGNMENT_ROWS.where(RoleAssignment.is_active.is_(True)))).all()
        self.versions.clear()
        rows: list[Any] = [*entity_rows, *assignment_rows]
        self.versions.update({spelled(row[0]): row[-1] for row in rows})
        entities = [_entity_fact(row) for row in entity_rows]
        assignments = [fact for row in assignment_rows if (fact := _assignment_fact(row)) is not None]
        self.runtime.policy.replace_facts(list(_in_tree_order(entities)), assignments)

    def _is_new(self, row: Any) -> bool:
        uuid, version = spelled(row[0]), row[-1]
        known = self.versions.get(uuid)
        if known is not None and version < known:
            return False
        self.versions[uuid] = version
        return True

    def apply_entities(self, rows: Sequence[Any]) -> None:
        """Mirror these entity rows (parents first), skipping any older than what is mirrored.

        A row whose parent is the entity's own descendant (a cycle, written around the service) forgets the entity,
        the roles held on it and, with it, its subtree's inheritance: refusing is the safe side, and the poll goes
        on. (Raised, it failed every poll and stopped the worker learning of any change, revocations too; a cycle
        among the rows of one poll had kept the old tree.)
        """
        policy = self.runtime.policy
        fresh = {spelled(row[0]) for row in rows if self._is_new(row)}
        facts = [_entity_fact(row) for row in rows]
        placed: set[str] = set()
        for fact in _in_tree_order(facts):
            placed.add(fact.uuid)
            if fact.uuid in fresh and policy.entity(fact.uuid) != fact:
                try:
                    policy.put_entity(fact)
                except ValueError:  # its parent is mirrored below it
                    self._forget_cycle(fact)
        for fact in facts:  # a cycle among these rows: no member comes in tree order
            if fact.uuid in fresh and fact.uuid not in placed:
                self._forget_cycle(fact)

    def _forget_cycle(self, fact: EntityFact) -> None:
        logger.warning("entity %s has its own descendant %s as parent: forgotten", fact.uuid, fact.parent)
        self.forget_entity(fact.uuid)

    def apply_assignments(self, rows: Sequence[Any]) -> None:
        """Mirror these assignment rows (inactive: forgotten), skipping any older than what is mirrored."""
        policy = self.runtime.policy
        for row in rows:
            if not self._is_new(row):
                continue
            uuid, fact = spelled(row[0]), _assignment_fact(row)
            if fact is None:
                if policy.assignment(uuid) is not None:
                    policy.remove_assignment(uuid)
            elif policy.assignment(uuid) != fact:
                policy.put_assignment(fact)

    def apply_deletions(self, rows: Sequence[Any], registered: set[str], granted: set[str]) -> None:
        """Act on deletions read in one snapshot with the changed entities and assignments; before applying those.

        ``registered`` and ``granted`` are the uuids of the entity and assignment rows of that snapshot. A deletion and
        a row of the same uuid in one snapshot mean the uuid was registered again after the deletion (a host system
        keeps its uuids), as does a registration made here since the snapshot: the entity stays, but the roles mirrored
        on the deleted one go (the deletion took their rows, a revoked one's too, so no poll would ever read them), save
        those this snapshot read, which are applied next. Otherwise the entity is forgotten, whatever the version
        mirrored (a writer whose clock leads may have dated it after the deletion). Versions are forgotten with what
        goes: a registration or grant anew is applied however its writer's clock dates it. (One dated before ``since``
        by a writer whose clock lags is not in the snapshot: the entity is forgotten, and checks about it refused, until
        its row next changes. A role granted here on an entity registered again here, both since the snapshot, is
        dropped until the next poll reads it again.)
        """
        policy, versions = self.runtime.policy, self.versions
        for text, _ in rows:
            uuid = spelled(text)
            versions.pop(uuid, None)
            if uuid in registered or self.refreshed_here.get(uuid):
                for assignment in policy.held_on_entity(uuid):
                    if assignment.uuid not in granted:
                        versions.pop(assignment.uuid, None)
                        policy.remove_assignment(assignment.uuid)
            elif policy.entity(uuid) is not None:
                self.forget_entity(uuid)

    def forget_entity(self, uuid: str) -> None:
        """Forget an entity deleted from the database, and the roles mirrored as held on it.

        The database deletes an entity's assignments with it, a revoked one too, and no poll sees a deleted row: a
        role revoked just before the deletion would otherwise stay mirrored, and grant again once the uuid is
        registered anew (a host system's uuid is kept).
        """
        policy = self.runtime.policy
        for assignment in policy.held_on_entity(uuid):
            policy.remove_assignment(assignment.uuid)
        policy.remove_entity(uuid)

    async def refresh_entity(self, session: AnySession, uuid: str) -> None:
        """Mirror an entity this worker has just changed as it now is (gone: forgotten); tell the other workers."""
        rows = (await session.execute(ENTITY_ROWS.where(Entity.uuid == UUID(uuid)))).all()
        self.refreshed_here[uuid] = bool(rows)
        if rows:
            self.apply_entities(rows)
        else:
            self.versions.pop(uuid, None)  # a registration anew, however its writer's clock dates it, is applied
            self.forget_entity(uuid)
        await self.runtime.facts_changed()

    async def refresh_assignment(self, session: AnySession, uuid: str) -> None:
        """Mirror an assignment this worker has just changed (inactive or gone: forgotten); tell the other workers."""
        rows = (await session.execute(ASSIGNMENT_ROWS.where(RoleAssignment.uuid == UUID(uuid)))).all()
        if rows:
            self.apply_assignments(rows)
        elif self.runtime.policy.assignment(uuid) is not None:
            self.runtime.policy.remove_assignment(uuid)
        await self.runtime.facts_changed()


class FactWatcher:
    """Polls for entities and assignments changed by other workers and applies them to this worker's engine."""

    # Rows are re-read this far back, so a writer whose clock or commit lags a little is still seen.
    OVERLAP = timedelta(seconds=5)
    # How far before the last poll a poll woken by a notification looks (``poll_recent``).
    RECENT_OVERLAP = timedelta(seconds=1)
    # How often the scheduled poll compares every uuid with the mirror: a deletion made around the service (straight
    # in the database) leaves no ``EntityDeletion`` to read.
    FULL_CHECK = timedelta(seconds=60)

    def __init__(self, runtime: Runtime) -> None:
        self.sync = FactSync(runtime)
        self._reader = reader(runtime.alchemy.get_engine())
        self.since = datetime.now(UTC) - self.OVERLAP
        self._last_started = self.since
        self._checked_at = self.since

    async def load_all(self) -> None:
        """Mirror every fact; polls then look for changes from before this load's snapshot on.

        ``since`` was set when this watcher was built, before the load: a change committed while start-up continues
        after the load (listening, the first credential poll), however long that takes, is still read.
        """
        await self.sync.load_all()
        self._checked_at = datetime.now(UTC)

    async def poll(self) -> None:
        """Apply every change committed since the last poll, and forget entities deleted elsewhere.

        It looks ``OVERLAP`` further back than the last poll's start, and compares every uuid at least every
        ``FULL_CHECK``.
        """
        check_all = datetime.now(UTC) - self._checked_at >= self.FULL_CHECK
        started = await self._poll(self.since, check_all=check_all)
        self.since = started - self.OVERLAP

    async def poll_recent(self) -> None:
        """``poll``, woken by a notification: it looks back only ``RECENT_OVERLAP`` before the last poll.

        Another instance announces a change after committing it, so its rows are this recent unless its clock or a
        long transaction dated them earlier; the next ``poll`` (every interval, however often wakes come) still
        finds those. At tens of changes a second each worker is woken many times a second, and every woken poll
        re-reading ``OVERLAP`` of changes made the rows read grow with the square of the change rate.
        """
        await self._poll(self._last_started - self.RECENT_OVERLAP, check_all=False)

    async def _poll(self, since: datetime, *, check_all: bool) -> datetime:
        """Apply the entities, assignments and entity deletions recorded since ``since``.

        ``check_all`` also compares every uuid with the mirror, for deletions that left no record. Reading the uuids
        only when a count of the entities disagrees with the mirror's would cost 4 ms instead of 170-270 ms at
        100,000 entities, but one row the polls never read (dated more than ``OVERLAP`` before its commit) would
        balance one such deletion for good.
        """
        started = datetime.now(UTC)
        refreshed_here = self.sync.refreshed_here
        refreshed_here.clear()
        async with self._reader.connect() as connection:
            rows = (await connection.execute(FACT_CHANGES, {"since": since})).all()
        entity_rows, assignment_rows, deletions = [], [], []
        for kind, uuid, name, on_uuid, user_id, expires_at, is_active, updated_at in rows:
            if kind == "entity":
                entity_rows.append((uuid, name, on_uuid, updated_at))
            elif kind == "assignment":
                assignment_rows.append((uuid, user_id, name, on_uuid, expires_at, is_active, updated_at))
            else:
                deletions.append((uuid, updated_at))
        registered = {spelled(row[0]) for row in entity_rows}
        self.sync.apply_deletions(deletions, registered, {spelled(row[0]) for row in assignment_rows})
        # a row of an entity this worker deleted while the rows were read may predate the deletion: not applied
        self.sync.apply_entities([row for row in entity_rows if refreshed_here.get(spelled(row[0])) is not False])
        self.sync.apply_assignments(assignment_rows)
        if check_all:
            for uuid in await self._deleted_elsewhere():
                self.sync.forget_entity(uuid)
            self._checked_at = started
        self._last_started = started
        return started

    async def _deleted_elsewhere(self) -> set[str]:
        """The mirrored entities that the database no longer holds, read :data:`UUID_CHUNK` uuids at a time.

        Only entities mirrored before the read are candidates: one this worker registers meanwhile stays. In chunks,
        the read holds a tenth of the table's rows at a time (all 100,000 at once took 20-30 MiB of a worker's memory
        for a moment, which it kept), and with the collector paused (each row is a few tracked objects: see
        ``collector_paused``).
        """
        candidates = self.sync.runtime.policy.entity_uuids()
        after = 0
        with collector_paused():
            async with self._reader.connect() as connection:
                while True:
                    rows = (await connection.execute(_UUID_TEXTS.limit(UUID_CHUNK), {"after": after})).all()
                    candidates.difference_update(spelled(text) for _, text in rows)
                    if len(rows) < UUID_CHUNK:
                        return candidates
                    after = rows[-1][0]
