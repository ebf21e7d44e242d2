"""The policy engine: static rules from ``policies/`` plus mirrored facts, behind one interface."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from service.metrics import POLICY_GENERATION, count_decision
from service.policy.catalog import PermissionSpec, RoleSpec, Rules
from service.policy.facts import AssignmentFact, Decision, EntityFact, Subject
from service.policy.loader import load_rules
from service.policy.store import FactStore, is_live

# Decision clauses, in evaluation order (DESIGN §3); every Decision names the one that decided it.
CLAUSES = (
    "unknown-permission",
    "token-scope",
    "token-binding",
    "unknown-entity",
    "global-permission",
    "staff",
    "no-entity",
    "role",
)

_MemoKey = tuple[Subject, str, str | None]
_NO_WINDOW = (math.inf, -math.inf)  # contains no time: the next question computes the window


class PolicyEngine:
    """Decides and explains what a subject may do on an entity.

    Rules come from a policy directory and are swapped atomically by :meth:`reload`. Facts (entities
    and active role assignments) are pushed in by the service after each commit. Decisions are
    memoised until the next change of rules or facts, or until an assignment expires.

    Mutations and questions are meant to run on one thread (the event loop); the only shared state
    touched from elsewhere is the Casbin call, which is serialised.
    """

    def __init__(self, rules: Rules, memo_size: int = 65_536) -> None:
        """Create an engine with no facts.

        Args:
            rules: Loaded rules (see :meth:`from_directory`).
            memo_size: Most decisions remembered at once; 0 disables the memo.
        """
        self._use(rules)
        self._facts = FactStore()
        self._memo: dict[_MemoKey, Decision] = {}
        self._memo_size = memo_size
        self._window = _NO_WINDOW
        self._generation = 0

    @classmethod
    def from_directory(cls, path: Path, memo_size: int = 65_536) -> PolicyEngine:
        """Load the rules in ``path`` into a new engine.

        Raises:
            PolicyError: The policy files are missing, malformed or inconsistent.
        """
        return cls(load_rules(path), memo_size)

    def reload(self, path: Path) -> None:
        """Swap in the rules of ``path``; on PolicyError keep the old rules and re-raise."""
        self._use(load_rules(path))
        self._changed()

    @property
    def generation(self) -> int:
        """A counter bumped whenever rules, facts or the set of live assignments change."""
        return self._generation

    # -- catalogue ---------------------------------------------------------------------------

    def _use(self, rules: Rules) -> None:
        # the catalogue is read on every check: plain attributes, not properties
        self._rules = rules
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
        self._changed()

    def put_entity(self, e: EntityFact) -> None:
        """Add or update an entity.

        Raises:
            ValueError: The parent is the entity itself or one of its descendants.
        """
        self._facts.put_entity(e)
        self._changed()

    def remove_entity(self, uuid: str) -> None:
        """Forget an entity: roles held on it and bindings to it grant nothing from now on."""
        self._facts.remove_entity(uuid)
        self._changed()

    def put_assignment(self, a: AssignmentFact) -> None:
        """Add or update an active role assignment."""
        self._facts.put_assignment(a)
        self._changed()

    def remove_assignment(self, uuid: str) -> None:
        """Forget a role assignment; the very next decision no longer counts it."""
        self._facts.remove_assignment(uuid)
        self._changed()

    def ancestors(self, uuid: str) -> list[str]:
        """Return the entity itself, then its parent, up to the root; empty for an unknown entity."""
        return list(self._facts.chain(uuid))

    @property
    def entity_count(self) -> int:
        """How many entities are mirrored."""
        return len(self._facts.entities)

    def entity_uuids(self) -> set[str]:
        """Every mirrored entity's uuid."""
        return set(self._facts.entities)

    def entity(self, uuid: str) -> EntityFact | None:
        """The mirrored entity ``uuid``, or None when it is unknown."""
        return self._facts.entities.get(uuid)

    def assignment(self, uuid: str) -> AssignmentFact | None:
        """The mirrored (active) assignment ``uuid``, or None."""
        return self._facts.assignment(uuid)

    def held_on(self, user_id: int, entity: str) -> list[AssignmentFact]:
        """Return the user's mirrored assignments held directly on ``entity``, live or expired (for explanations)."""
        return list(self._facts.held_on(user_id, entity))

    def grant_rule(self, role: str, permission: str) -> str | None:
        """Return ``file:line`` of the rule by which ``role`` grants ``permission``, or None if it does not."""
        return self._rules.grant_sources.get((role, permission))

    def _changed(self) -> None:
        self._generation += 1
        POLICY_GENERATION.set(self._generation)
        self._memo.clear()
        self._window = _NO_WINDOW

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
            if self._window is not _NO_WINDOW:  # not just reset by a change: an assignment expired (or clock moved)
                self._changed()
            self._window = self._facts.live_window(at)
        key = (subject, permission, entity)
        decision = self._memo.get(key)
        if decision is None:
            decision = self._evaluate(subject, permission, entity, now or datetime.fromtimestamp(at, UTC))
            if self._memo_size:
                if len(self._memo) >= self._memo_size:
                    del self._memo[next(iter(self._memo))]
                self._memo[key] = decision
        count_decision(decision)
        return decision

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
        chain = self._facts.chain(entity)
        return any(
            held.entity in chain or entity in self._facts.chain(held.entity)
            for held in self._facts.live_of_user(user_id, now or datetime.now(UTC))
        )

    def delegable_scopes(self, user_id: int, is_staff: bool, now: datetime | None = None) -> list[str]:
        """Return the permissions the user may put in a token, in declaration order.

        Staff may delegate every delegable permission, ``STAFF.ACCESS`` included. Others may delegate
        the ``token``-delegable permissions their live roles grant.
        """
        permissions = self._rules.permissions
        if is_staff:
            return [name for name, spec in permissions.items() if spec.delegable]
        granted: set[str] = set()
        for assignment in self._facts.live_of_user(user_id, now or datetime.now(UTC)):
            role = self._rules.roles.get(assignment.role)
            if role is not None:
                granted.update(role.permissions)
        return [name for name, spec in permissions.items() if name in granted and spec.delegation == "token"]

    def binding_targets(self, user_id: int, is_staff: bool, now: datetime | None = None) -> dict[str, list[str]]:
        """Return permission -> sorted entity types a token of this user may bind it to.

        Staff: every bind type of every delegable permission. Others: for each live assignment, the
        ``token``-delegable permissions of its role that may bind to the type of the entity it is held on.
        """
        permissions = self._rules.permissions
        if is_staff:
            return {
                name: sorted(spec.bind_types)
                for name, spec in permissions.items()
                if spec.delegable and spec.bind_types
            }
        targets: dict[str, set[str]] = {}
        for assignment in self._facts.live_of_user(user_id, now or datetime.now(UTC)):
            role = self._rules.roles.get(assignment.role)
            if role is None:  # an assignment of a role the current rules no longer declare
                continue
            entity_type = self._facts.entities[assignment.entity].type
            for name in role.permissions:
                spec = permissions[name]
                if spec.delegation == "token" and entity_type in spec.bind_types:
                    targets.setdefault(name, set()).add(entity_type)
        return {name: sorted(targets[name]) for name in permissions if name in targets}

    def _evaluate(self, subject: Subject, permission: str, entity: str | None, now: datetime) -> Decision:
        """Apply the clauses of DESIGN §3 in order."""
        spec = self._rules.permissions.get(permission)
        if spec is None:
            return Decision(False, f"unknown permission {permission}", "unknown-permission")
        token = subject.token
        if token is not None:
            if permission not in token.scopes:
                return Decision(False, f"token scopes do not include {permission}", "token-scope")
            if not spec.delegable:
                # Defence in depth: issuance refuses such scopes, so only a stale or forged token gets here.
                return Decision(False, f"{permission} is never delegated to a token", "token-scope")
            if token.bindings:
                if spec.global_only:  # issuance refuses bindings next to a global scope: only a forged token gets here
                    return Decision(False, f"{permission} is global: a bound token never passes it", "token-binding")
                if entity is None:
                    return Decision(False, "bound token cannot pass a check without a target entity", "token-binding")
                if token.bindings.isdisjoint(self._facts.chain(entity)):
                    return Decision(
                        False,
                        f"entity {entity} is neither bound to the token nor below a bound entity",
                        "token-binding",
                    )
        if entity is not None and entity not in self._facts.entities:
            return Decision(False, f"unknown entity {entity}", "unknown-entity")
        if spec.global_only:
            verdict = "staff hold it" if subject.is_staff else "only staff hold it"
            return Decision(subject.is_staff, f"{permission} is a global permission: {verdict}", "global-permission")
        if subject.is_staff:
            return Decision(True, f"staff hold every permission, {permission} included", "staff")
        if entity is None:
            return Decision(False, f"{permission} needs a target entity: no role is held globally", "no-entity")
        return self._role_decision(subject.user_id, permission, entity, now)

    def _role_decision(self, user_id: int, permission: str, entity: str, now: datetime) -> Decision:
        """Ask Casbin whether a role live on ``entity`` or an ancestor grants ``permission``."""
        held: dict[str, AssignmentFact] = {}  # role -> nearest live assignment of it
        for node in self._facts.chain(entity):
            for assignment in self._facts.held_on(user_id, node):
                if assignment.role not in held and is_live(assignment, now):
                    held[assignment.role] = assignment
        if not held:
            return Decision(False, f"user {user_id} holds no live role on {entity} or its ancestors", "role")
        role = self._rules.matcher.granting_role(frozenset(held), permission)
        if role is None:
            return Decision(False, f"no role held ({', '.join(sorted(held))}) grants {permission}", "role")
        # Casbin names the first granting rule in file order; the explanation names the nearest granting assignment
        # (``held`` is in chain order, nearest first)
        role = next((name for name in held if (name, permission) in self._rules.grant_sources), role)
        assignment = held[role]
        rule = self._rules.grant_sources[(role, permission)]
        held_type = self._facts.entities[assignment.entity].type
        return Decision(
            True,
            f"{role} held on {held_type} {assignment.entity} (assignment {assignment.uuid}) "
            f"grants {permission} [{rule}]",
            "role",
            role=role,
            assignment=assignment.uuid,
            held_on=assignment.entity,
            rule=rule,
        )
