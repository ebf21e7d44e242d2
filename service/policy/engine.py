"""The policy engine: static rules from ``policies/`` plus mirrored facts, behind one interface.

Casbin answers every question the engine has not memoised (``service.policy.evaluator``); the engine keeps the
facts, memoises the answers and explains them.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from service.bounded import FifoMap
from service.metrics import POLICY_GENERATION, count_decision
from service.policy.catalog import PermissionSpec, RoleSpec, Rules
from service.policy.evaluator import LINE_ENTITY, NO_ENTITY, EvaluationError, Evaluator
from service.policy.facts import AssignmentFact, Clause, Decision, EntityFact, Subject
from service.policy.loader import load_rules
from service.policy.store import FactStore, is_live

logger = logging.getLogger("tokengate.policy")

# The clauses of model.conf's check matcher that can deny, in the order the matcher states them.
DENYING_CLAUSES = (
    Clause.UNKNOWN_PERMISSION,
    Clause.TOKEN_SCOPE,
    Clause.TOKEN_BINDING,
    Clause.UNKNOWN_ENTITY,
    Clause.GLOBAL_PERMISSION,
    Clause.NO_ENTITY,
    Clause.ROLE,
)
CLAUSES = tuple(Clause)

# subject, permission, entity (or the shape of one: see _recall_or_evaluate), the subject's user epoch
_MemoKey = tuple[Subject, str, str | tuple[str, ...] | None, int]
_NO_WINDOW = (math.inf, -math.inf)  # contains no time: the next question computes the window
_ALWAYS = (-math.inf, math.inf)
REACHABLE_SIZE = 4_096  # subjects whose reachable entities are remembered (see _shape)
EPOCHS = 1 << 18  # user epochs of a memoising engine (2 MiB): one per user id up to 262,143, shared above
REMOVED_LEAVES = 65_536  # removed leaves whose memoised decisions are distrusted before everything is forgotten
# the chance that an answer found by shape is memoised as asked (see _recall_or_evaluate)
SHAPE_ANSWER_ADMISSION = 1 / 8


class PolicyEngine:
    """Decides and explains what a subject may do on an entity.

    Rules come from a policy directory and are swapped atomically by :meth:`reload`. Facts (entities
    and active role assignments) are pushed in by the service after each commit.

    Decisions are memoised in a :class:`FifoMap` of ``memo_size`` entries. An allow is also memoised for the
    target's *shape*, what the check matcher can see of it (``service.policy.views``), in a map of its own (a
    quarter of that size), so a question about another target of the same shape (another resource of the same
    project, say) is answered without Casbin; such an answer is memoised as asked only by chance (one time in
    eight: :data:`SHAPE_ANSWER_ADMISSION`), so a target asked about again and again soon has it while a stream of
    ever new targets does not churn the memo. A change forgets only the decisions it can affect:

    - an assignment added, changed or removed: the decisions of its holder(s). Each user has an epoch, bumped
      by such a change and part of the memo key, so a hit costs one more lookup and a change no scan: the
      holder's old entries are never found again and age out of the map. The epochs are a fixed list of
      :data:`EPOCHS` counters indexed by user id modulo its length, so they never grow: users sharing a counter
      forget each other's decisions too, and never keep a stale one (a counter only grows);
    - a new entity that no mirrored entity names as parent (see :class:`FactStore`): nothing, because a
      decision about an entity that is not mirrored is never memoised (such questions are rare on the service
      path, and a client naming random uuids cannot flush the memo with them);
    - a leaf removed (no mirrored entity names it as parent): the decisions about it. The uuid joins a set of
      removed leaves, and a memoised decision about one of them is not trusted (a hit costs one more test while
      the set is not empty); no other target's chain runs through a leaf. The set holds :data:`REMOVED_LEAVES`
      uuids, then everything is forgotten and it starts empty;
    - an entity moved or retyped, or one registered or removed that others name as parent: everything. Those
      changes reach the decisions on the entity's whole subtree; finding the subtree needs an index of children
      (tens of MiB at a million entities) or a check of the chain on every hit, and the changes are rare;
    - rules reloaded, every fact replaced, an assignment expired (the decision time left the window in which the
      set of live assignments stays the same): everything.

    Mutations and questions are meant to run on one thread (the event loop); the only shared state
    touched from elsewhere is the Casbin call, which is serialised.
    """

    def __init__(self, rules: Rules, memo_size: int = 65_536, *, counted: bool = False) -> None:
        """Create an engine with no facts.

        Args:
            rules: Loaded rules (see :meth:`from_directory`).
            memo_size: Most decisions remembered at once; 0 disables the memo.
            counted: Count every decision in the ``tokengate_decisions_total`` metric (the service's own engine;
                not the engines the policy tools build to explore and prove a policy).
        """
        self._count = count_decision if counted else _uncounted
        self._facts = FactStore()
        self._use(rules)
        self._memo: FifoMap[_MemoKey, Decision] = FifoMap(memo_size)
        self._decisions = self._memo.items  # the same dictionary, one attribute lookup nearer the hot path
        # allows by shape, apart: questions about ever new targets churn the memo, and must not push these out
        self._by_shape: FifoMap[_MemoKey, Decision] = FifoMap(memo_size // 4)
        self._reachable: FifoMap[tuple[Subject, int], set[object]] = FifoMap(min(memo_size, REACHABLE_SIZE))
        self.shape_admission = SHAPE_ANSWER_ADMISSION
        """The chance that an answer found by shape is memoised as asked (1.0: every answer is)."""
        self._epochs = [0] * (EPOCHS if memo_size else 1)  # user id modulo the length -> changes to their roles
        self._slots = len(self._epochs)
        self._removed: dict[str, str] = {}  # leaves removed since everything was last forgotten -> their types
        self._held = _ALWAYS  # every memoised decision holds at any time in this span
        self._window = _NO_WINDOW  # _held, or _NO_WINDOW while _held must first shrink to the live window
        self._generation = 0

    @classmethod
    def from_directory(cls, path: Path, memo_size: int = 65_536, *, counted: bool = False) -> PolicyEngine:
        """Load the rules in ``path`` into a new engine (see ``__init__`` for the arguments).

        Raises:
            PolicyError: The policy files are missing, malformed or inconsistent.
        """
        return cls(load_rules(path), memo_size, counted=counted)

    def reload(self, path: Path) -> None:
        """Swap in the rules of ``path``; on PolicyError keep the old rules and re-raise."""
        self._use(load_rules(path))
        self._forget_all()

    @property
    def rules(self) -> Rules:
        """The rules in force."""
        return self._rules

    @property
    def memo_size(self) -> int:
        """Most decisions remembered at once (0: none)."""
        return self._memo.size

    @property
    def generation(self) -> int:
        """A counter bumped whenever rules, facts or the set of live assignments change (a decision may differ)."""
        return self._generation

    # -- catalogue ---------------------------------------------------------------------------

    def _use(self, rules: Rules) -> None:
        # the catalogue is read on every check: plain attributes, not properties
        self._evaluator = Evaluator(rules, self._facts)
        self._rules = rules
        model = Path(rules.model_file)
        self._model_name = f"{model.parent.name}/{model.name}"  # as explanations name it: DIR/model.conf
        self.permissions: Mapping[str, PermissionSpec] = rules.permissions
        """Permission name -> spec, in declaration order."""
        self.roles: Mapping[str, RoleSpec] = rules.roles
        """Role name -> spec, in declaration order."""
        self.entity_types: Mapping[str, tuple[str, ...]] = rules.entity_types
        """Entity type -> allowed parent types (empty for a root type)."""

    def may_parent(self, child_type: str, parent_type: str | None) -> bool:
        """Whether an entity of ``child_type`` may sit under one of ``parent_type`` (None: at the root)."""
        parents = self._rules.entity_types.get(child_type)
        if parents is None:
            return False
        return not parents if parent_type is None else parent_type in parents

    # -- facts -------------------------------------------------------------------------------

    def replace_facts(self, entities: Iterable[EntityFact], assignments: Iterable[AssignmentFact]) -> None:
        """Replace every mirrored fact (start-up, or resynchronisation)."""
        self._facts.replace(entities, assignments)
        self._forget_all()

    def put_entity(self, e: EntityFact) -> None:
        """Add or update an entity.

        Raises:
            ValueError: The parent is the entity itself or one of its descendants.
        """
        if self._facts.put_entity(e) or self._removed.get(e.uuid, e.type) != e.type:
            self._forget_all()  # a removed leaf registered again as another type is a retype: shapes hold types
        else:
            self._bump()

    def remove_entity(self, uuid: str) -> None:
        """Forget an entity: roles held on it and bindings to it grant nothing from now on."""
        removed = self.entity(uuid)
        if removed is None:
            return
        if self._facts.remove_entity(uuid) or len(self._removed) >= REMOVED_LEAVES:
            self._forget_all()
            return
        self._bump()
        self._removed[uuid] = removed.type

    def put_assignment(self, a: AssignmentFact) -> None:
        """Add or update an active role assignment."""
        before = self._facts.assignment(a.uuid)
        self._facts.put_assignment(a)
        holders = [a.user_id] if before is None else [a.user_id, before.user_id]
        self._forget_users(holders, new_expiry=a.expires_at is not None)

    def remove_assignment(self, uuid: str) -> None:
        """Forget a role assignment; the very next decision no longer counts it."""
        before = self._facts.assignment(uuid)
        self._facts.remove_assignment(uuid)
        self._forget_users([] if before is None else [before.user_id], new_expiry=False)

    def ancestors(self, uuid: str) -> list[str]:
        """Return the entity itself, then its parent, up to the root; empty for an unknown entity."""
        return list(self._facts.chain(uuid))

    def entity_uuids(self) -> set[str]:
        """Every mirrored entity's uuid."""
        return set(self._facts.entities)

    def entity(self, uuid: str) -> EntityFact | None:
        """The mirrored entity ``uuid``, or None when it is unknown."""
        return self._facts.entities.get(uuid)

    def assignment(self, uuid: str) -> AssignmentFact | None:
        """The mirrored (active) assignment ``uuid``, or None."""
        return self._facts.assignment(uuid)

    def held_on_entity(self, entity: str) -> list[AssignmentFact]:
        """Return the mirrored assignments held directly on ``entity``, by anyone."""
        return self._facts.held_on_entity(entity)

    def held_on(self, user_id: int, entity: str) -> list[AssignmentFact]:
        """Return the user's mirrored assignments held directly on ``entity``, live or expired (for explanations)."""
        return list(self._facts.held_on(user_id, entity))

    def grant_rule(self, role: str, permission: str) -> str | None:
        """Return ``file:line`` of the rule by which ``role`` grants ``permission``, or None if it does not."""
        return self._rules.grant_sources.get((role, permission))

    def _bump(self) -> None:
        self._generation += 1
        POLICY_GENERATION.set(self._generation)

    def _forget_all(self) -> None:
        self._bump()
        self._memo.clear()
        self._by_shape.clear()
        self._reachable.clear()
        self._removed.clear()
        self._held, self._window = _ALWAYS, _NO_WINDOW

    def _forget_users(self, user_ids: list[int], *, new_expiry: bool) -> None:
        """Forget the decisions of these users.

        After a ``new_expiry`` the next question first shrinks the live window to it; fewer expiries leave every
        time of the window as it was.
        """
        self._bump()
        for user_id in user_ids:
            self._epochs[user_id % self._slots] += 1
        if new_expiry:
            self._window = _NO_WINDOW

    def _fit_window(self, at: float) -> None:
        """Shrink the span in which memoised decisions hold to the live window around ``at``.

        If ``at`` is outside that span (an assignment expired, or the clock went back), forget every decision first.
        """
        since, until = self._held
        if not since <= at < until:
            self._forget_all()
            since, until = _ALWAYS
        live_since, live_until = self._facts.live_window(at)
        self._held = self._window = (max(since, live_since), min(until, live_until))

    # -- questions ---------------------------------------------------------------------------

    def decide(self, subject: Subject, permission: str, entity: str | None, now: datetime | None = None) -> Decision:
        """Decide whether ``subject`` may use ``permission`` on ``entity`` (None: a global check).

        Args:
            subject: The user, and the limits of the token used if it is a PAT.
            permission: Permission name.
            entity: Uuid of the target entity, or None.
            now: Timezone-aware time of the request; defaults to the current time.

        Returns:
            The decision, naming the clause that decided it.
        """
        at = time.time() if now is None else now.timestamp()  # a float: cheaper than datetimes on every request
        since, until = self._window
        if not since <= at < until:
            self._fit_window(at)
        key = (subject, permission, entity, self._epochs[subject.user_id % self._slots])
        decision = self._decisions.get(key)
        if decision is None or (self._removed and entity in self._removed):
            decision = self._recall_or_evaluate(subject, permission, entity, key, at)
        self._count(decision)
        return decision

    def _recall_or_evaluate(
        self, subject: Subject, permission: str, entity: str | None, key: _MemoKey, at: float
    ) -> Decision:
        """A question not memoised as ``key``: answered by an allow memoised for a target of the same shape, or Casbin.

        A question about an entity that is not mirrored is never memoised. Casbin's answers are memoised as asked;
        one found by shape only by chance (``shape_admission``): with targets spread wide (a resource server's clients
        asking about 100,000 resources) nearly every question is new, and memoising each would push out the
        answers that are asked again (denials among them) and cost every request an insertion and an eviction.
        A target asked about repeatedly is memoised after a few asks.
        """
        if entity is not None and not self._facts.exists(entity):
            return self._evaluate(subject, permission, entity, at)
        # "" is the global check's r.obj: a mirrored "" is unlike every other target (r.obj == "" holds for it);
        # an engine that memoises nothing has no use for shapes
        shape = self._shape(subject, entity, key[3]) if entity and self._by_shape.size else None
        like: _MemoKey = (subject, permission, shape, key[3])
        decision = self._by_shape.items.get(like) if shape is not None else None
        if decision is not None:
            if random.random() < self.shape_admission:  # noqa: S311 (no secret: which answers to keep)
                self._memo.put(key, decision)
            return decision
        decision = self._evaluate(subject, permission, entity, at)
        if shape is not None and decision.allowed:  # a denial names its target: it holds for that target alone
            self._by_shape.put(like, decision)
        self._memo.put(key, decision)
        return decision

    def _shape(self, subject: Subject, entity: str, epoch: int) -> tuple[str, ...] | None:
        """What the check matcher sees of the mirrored ``entity`` when ``subject`` asks; None: it has no such view.

        The entities it can see are remembered per subject and user epoch: they change only with the assignments.
        """
        view = self._evaluator.target_view
        if view is None:
            return None
        key = (subject, epoch)
        reachable = self._reachable.items.get(key)
        if reachable is None:
            reachable = self._evaluator.reachable(subject)
            if reachable is None:
                return None
            self._reachable.put(key, reachable)
        return view.shape(self._facts.chain(entity), reachable)

    def holds(self, user_id: int, is_staff: bool, permission: str, entity: str, now: datetime | None = None) -> bool:
        """Whether the user, ignoring any token, holds ``permission`` on ``entity`` (staff: always).

        Unknown permissions and unknown entities are held by nobody.
        """
        return self.decide(Subject(user_id, is_staff), permission, entity, now).allowed

    def is_visible_to(self, user_id: int, is_staff: bool, entity: str, now: datetime | None = None) -> bool:
        """Whether the user may learn that ``entity`` exists (unknown entities are visible to nobody).

        Staff see every entity; others one on which, above which or below which they hold a live role.
        """
        if entity not in self._facts.entities:
            return False
        if is_staff:
            return True
        chain, at = self._facts.chain(entity), now or datetime.now(UTC)
        return any(
            is_live(held, at) and (held.entity in chain or entity in self._facts.chain(held.entity))
            for held in self._facts.of_user(user_id)
        )

    def delegable_scopes(self, user_id: int, is_staff: bool, now: datetime | None = None) -> list[str]:
        """Return the permissions the user may put in an unbound token now (m2), in declaration order."""
        subject, at = Subject(user_id, is_staff), _epoch(now)
        return [name for name in self._rules.permissions if self._asks(self._evaluator.delegate, subject, name, "", at)]

    def may_delegate(
        self, user_id: int, is_staff: bool, permission: str, entity: str, now: datetime | None = None
    ) -> bool:
        """Whether the user may put ``permission`` in a token bound to ``entity`` (m2)."""
        return self._asks(self._evaluator.delegate, Subject(user_id, is_staff), permission, entity, _epoch(now))

    def may_bind(self, permission: str, entity_type: str) -> bool:
        """Whether a token carrying ``permission`` may be bound to entities of ``entity_type`` (m3)."""
        try:
            return self._evaluator.bind(permission, entity_type)
        except EvaluationError as exc:
            logger.error("%s (denied)", exc)
            return False

    def binding_targets(self, user_id: int, is_staff: bool, now: datetime | None = None) -> dict[str, list[str]]:
        """Return permission -> sorted entity types a token of this user may bind it to (m3 and m4)."""
        subject, at = Subject(user_id, is_staff), _epoch(now)
        targets: dict[str, list[str]] = {}
        for name in self._rules.permissions:
            types = [
                entity_type
                for entity_type in sorted(self._rules.entity_types)
                if self.may_bind(name, entity_type)
                and self._asks(self._evaluator.target, subject, name, entity_type, at)
            ]
            if types:
                targets[name] = types
        return targets

    @staticmethod
    def _asks(question: Callable[[Subject, str, str, float], bool], *request: object) -> bool:
        try:
            return question(*request)  # type: ignore[arg-type]
        except EvaluationError as exc:
            logger.error("%s (denied)", exc)
            return False

    def _evaluate(self, subject: Subject, permission: str, entity: str | None, at: float) -> Decision:
        """Ask Casbin (m) at ``at`` (``time.time()`` seconds), then explain its answer.

        A datetime is made only to explain a denial (a memo miss answered by shape makes none at all).
        """
        try:
            allowed, line = self._evaluator.check(subject, permission, entity or NO_ENTITY, at)
        except EvaluationError as exc:
            logger.error("%s (denied)", exc)
            return Decision(False, f"the policy could not decide: {exc}", Clause.ROLE)
        if allowed:
            return self._explain_allow(subject, permission, line)
        return self._explain_deny(subject, permission, entity, datetime.fromtimestamp(at, UTC))

    def _explain_allow(self, subject: Subject, permission: str, line: list[object]) -> Decision:
        spec = self._rules.permissions.get(permission)
        if spec is not None and spec.global_only:
            return Decision(True, f"{permission} is a global permission: staff hold it", Clause.GLOBAL_PERMISSION)
        if subject.is_staff:
            return Decision(True, f"staff hold every permission, {permission} included", Clause.STAFF)
        if not line:
            return Decision(True, f"{self._rules.model_file} allows {permission}", Clause.ROLE)
        role, held_on, uuid = str(line[1]), str(line[LINE_ENTITY]), str(line[4])
        rule = self._rules.grant_sources.get((role, permission))
        entity = self._facts.entities.get(held_on)
        held_type = entity.type if entity is not None else "entity"
        return Decision(
            True,
            f"{role} held on {held_type} {held_on} (assignment {uuid}) grants {permission} [{rule or 'g'}]",
            Clause.ROLE,
            role=role,
            assignment=uuid,
            held_on=held_on,
            rule=rule,
        )

    def _explain_deny(self, subject: Subject, permission: str, entity: str | None, now: datetime) -> Decision:
        failed = self._evaluator.failing_clause(subject, permission, entity or NO_ENTITY, now.timestamp())
        if failed is None:  # every clause holds on some line, never all on one
            failed = self._evaluator.conjuncts[-1]
        index = self._evaluator.conjuncts.index(failed)
        where = f"{self._model_name}:{failed.line}"
        if index >= len(DENYING_CLAUSES):
            return Decision(False, f"{where}: {failed.text} does not hold", where, rule=where)
        clause = DENYING_CLAUSES[index]
        token = subject.token
        match clause:
            case Clause.UNKNOWN_PERMISSION:
                reason = f"unknown permission {permission}"
            case Clause.TOKEN_SCOPE if token is not None and permission in token.scopes:
                reason = f"{permission} is never delegated to a token"
            case Clause.TOKEN_SCOPE:
                reason = f"token scopes do not include {permission}"
            case Clause.TOKEN_BINDING if self._rules.permissions[permission].global_only:
                reason = f"{permission} is global: a bound token never passes it"
            case Clause.TOKEN_BINDING if entity is None:
                reason = "bound token cannot pass a check without a target entity"
            case Clause.TOKEN_BINDING:
                reason = f"entity {entity} is neither bound to the token nor below a bound entity"
            case Clause.UNKNOWN_ENTITY:
                reason = f"unknown entity {entity}"
            case Clause.GLOBAL_PERMISSION:
                reason = f"{permission} is a global permission: only staff hold it"
            case Clause.NO_ENTITY:
                reason = f"{permission} needs a target entity: no role is held globally"
            case _:
                reason = self._role_denial(subject.user_id, permission, entity or "", now)
        return Decision(False, reason, clause, rule=where)

    def _role_denial(self, user_id: int, permission: str, entity: str, now: datetime) -> str:
        held = {
            assignment.role
            for node in self._facts.chain(entity)
            for assignment in self._facts.held_on(user_id, node)
            if is_live(assignment, now)
        }
        if not held:
            return f"user {user_id} holds no live role on {entity} or its ancestors"
        return f"no role held ({', '.join(sorted(held))}) grants {permission}"


def _uncounted(decision: Decision) -> None:
    """Count nothing (an engine that is not the service's own)."""


def _epoch(now: datetime | None) -> float:
    return time.time() if now is None else now.timestamp()
