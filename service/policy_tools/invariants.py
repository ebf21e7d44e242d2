"""``policy assert``: the invariants a reviewer writes in ``policies/invariants.yaml``, proved over a finite world.

An invariant quantifies over the world's users (staff, a user with no role, and one user per role, entity it may
be held on and liveness), its tokens (none, unbound, bound to each entity; a token carries the permission asked),
the targets (every entity, and none) and the declared permissions, and says which answer the evaluator must never
(or always) give. The world is generated from the policy's own catalogue; ``policies/README.md`` ("Invariants")
describes the language and argues why the world is large enough.

Every answer comes from the engine's public interface (``decide``, ``delegable_scopes``, ``binding_targets``), so
the prover asks the same evaluator the service asks; nothing here decides anything itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec
import yaml

from service.policy.catalog import PermissionSpec
from service.policy.engine import PolicyEngine
from service.policy.errors import PolicyError
from service.policy.facts import AssignmentFact, Binding, EntityFact, Subject, TokenLimits
from service.policy.loader import DELEGATIONS, SCOPES
from service.policy_tools.explain import ask

INVARIANTS_FILE = "invariants.yaml"
QUESTIONS = ("allow", "delegate", "bind", "bindable")
POSITIONS = ("same", "ancestor", "descendant", "sibling", "other", "none")
SUBJECTS = ("user", "staff")
TOKENS = ("none", "unbound", "bound")
NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
"""The time of every question; an expired assignment expired an hour before."""
NESTING_DEPTH = 3
"""How often a type that may sit below itself appears on one chain of the world."""
CASE = "counterexample"

# quantifier -> the closed set of values it ranges over (None: names declared by the policy)
_SELECTORS: dict[str, tuple[str, ...] | None] = {
    "permission": None,
    "delegation": DELEGATIONS,
    "scope": SCOPES,
    "subject": SUBJECTS,
    "role": None,
    "held_on": None,
    "target": POSITIONS,
    "target_type": None,
    "token": TOKENS,
    "bound_to": None,
    "binding": POSITIONS,
}
_TARGET_KEYS = {"target", "target_type"}  # need a target: questions allow and bind
_TOKEN_KEYS = {"token", "bound_to", "binding"}  # need a token: question allow
_NAME_RE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_KEYS = {"name", "says", "never", "always", "given", "live", *_SELECTORS}


@dataclass(frozen=True, slots=True)
class Selector:
    """The values a quantifier ranges over: glob patterns such as ``CUSTOMER.*``, or all but them.

    ``none`` stands for "no value": no role held, no target entity.
    """

    patterns: tuple[str, ...] = ()
    negated: bool = False

    def matches(self, value: str | None) -> bool:
        """Whether ``value`` (None: no value) is in range; the empty selector ranges over everything."""
        if not self.patterns:
            return True
        hit = "none" in self.patterns if value is None else any(fnmatchcase(value, p) for p in self.patterns)
        return hit is not self.negated


_EVERYTHING = Selector()


@dataclass(frozen=True, slots=True)
class Invariant:
    """One property of the policy: for every situation in range, ``question`` is answered ``expected``.

    Attributes:
        name: Short unique name.
        says: The property in the reviewer's words.
        file: Path of the invariants file.
        line: Line of the invariant in it.
        question: ``allow``, ``delegate``, ``bind`` or ``bindable``.
        expected: True for ``always``, False for ``never``.
        given: A question that must be answered yes for the situation to count (a premise), or None.
        live: Only live (True) or only expired (False) assignments; None for both.
        selectors: Quantifier name -> range (absent: everything).
    """

    name: str
    says: str
    file: str
    line: int
    question: str
    expected: bool
    given: str | None = None
    live: bool | None = None
    selectors: Mapping[str, Selector] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``file:line`` of the invariant."""
        return f"{self.file}:{self.line}"

    def select(self, name: str) -> Selector:
        """The range of quantifier ``name``."""
        return self.selectors.get(name, _EVERYTHING)

    @property
    def asks(self) -> set[str]:
        """Every question this invariant puts to the evaluator."""
        return {self.question} | ({self.given} if self.given else set())


def load_invariants(path: Path) -> list[Invariant]:
    """Read an invariants file: a YAML list of mappings (see ``policies/README.md``).

    Raises:
        PolicyError: The file is not valid YAML or an invariant is malformed; located by line.
    """
    file = str(path)
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(file, 0, f"cannot read: {exc}") from exc
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(file, mark.line + 1 if mark else 0, f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise PolicyError(file, node.start_mark.line + 1, "the invariants file is a list of invariants")
    invariants: list[Invariant] = []
    for item, values in zip(node.value, data, strict=True):
        invariant = _read_invariant(file, item, values)
        if any(other.name == invariant.name for other in invariants):
            raise PolicyError(file, invariant.line, f"invariant {invariant.name!r} is declared twice")
        invariants.append(invariant)
    return invariants


def _read_invariant(file: str, node: yaml.Node, values: Any) -> Invariant:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode) or not isinstance(values, dict):
        raise PolicyError(file, line, "an invariant is a mapping with name, says and never or always")
    lines = {key.value: key.start_mark.line + 1 for key, _ in node.value}
    for key in values:
        if key not in _KEYS:
            message = f"unknown key {key!r}; expected one of {', '.join(sorted(_KEYS))}"
            raise PolicyError(file, lines.get(key, line), message)

    def fail(key: str, message: str) -> PolicyError:
        return PolicyError(file, lines.get(key, line), message)

    for key in ("name", "says"):
        if not isinstance(values.get(key), str) or not values[key].strip():
            raise fail(key, f"{key} must be a non-empty text")
    if not _NAME_RE.fullmatch(values["name"]):
        raise fail("name", "a name is lower-case words joined by hyphens, such as no-grant-upwards")
    verbs = [verb for verb in ("never", "always") if verb in values]
    if len(verbs) != 1:
        raise fail(verbs[-1] if verbs else "name", "an invariant says exactly one of never or always")
    question = values[verbs[0]]
    for key in (verbs[0], "given"):
        if key in values and values[key] not in QUESTIONS:
            raise fail(key, f"{key} takes a question: one of {', '.join(QUESTIONS)}")
    live = values.get("live")
    if live is not None and not isinstance(live, bool):
        raise fail("live", "live must be true or false")
    asks = {question, values.get("given", question)}
    for key in sorted(_TARGET_KEYS & set(values)):
        if not asks & {"allow", "bind"}:
            raise fail(key, f"{key} needs a target: it applies to the questions allow and bind")
    for key in sorted(_TOKEN_KEYS & set(values)):
        if "allow" not in asks:
            raise fail(key, f"{key} applies to the question allow only")
    selectors = {key: _selector(values[key], _SELECTORS[key], file, lines[key]) for key in _SELECTORS if key in values}
    return Invariant(
        name=values["name"],
        says=" ".join(values["says"].split()),
        file=file,
        line=line,
        question=question,
        expected=verbs[0] == "always",
        given=values.get("given"),
        live=live,
        selectors=selectors,
    )


def _selector(value: Any, closed: tuple[str, ...] | None, file: str, line: int) -> Selector:
    """A selector from ``PATTERN``, ``[PATTERN, ...]`` or ``{not: PATTERN or [PATTERN, ...]}``."""
    negated = isinstance(value, dict)
    if negated:
        if set(value) != {"not"}:
            raise PolicyError(file, line, "a selector is PATTERN, [PATTERN, ...] or {not: ...}")
        value = value["not"]
    patterns = [value] if isinstance(value, str) else value
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise PolicyError(file, line, "a selector is PATTERN, [PATTERN, ...] or {not: ...}")
    for pattern in patterns:
        if closed is not None and pattern not in closed:
            raise PolicyError(file, line, f"{pattern!r} is not one of {', '.join(closed)}")
    return Selector(tuple(patterns), negated)


# --- the world -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """A user of the world: staff, a user holding nothing, or the holder of one role on one entity.

    Attributes:
        name: Readable name, used in counterexamples.
        user_id: Integer id in the engine.
        staff: Whether the user is staff.
        assignment: The one role assignment held, or None.
    """

    name: str
    user_id: int
    staff: bool
    assignment: AssignmentFact | None = None

    @property
    def role(self) -> str | None:
        """The role held, or None."""
        return self.assignment.role if self.assignment else None

    @property
    def holder(self) -> str | None:
        """The entity the role is held on, or None."""
        return self.assignment.entity if self.assignment else None

    @property
    def live(self) -> bool:
        """Whether the assignment (if any) is live at :data:`NOW`."""
        return self.assignment is None or self.assignment.expires_at is None


@dataclass(slots=True)
class World:
    """Entities and users generated from a policy's catalogue, loaded into an engine of that policy.

    Attributes:
        engine: The engine, holding the world as its facts.
        entities: Entity uuid (a readable name) -> fact; parents come before their children.
        members: Every user of the world.
    """

    engine: PolicyEngine
    entities: dict[str, EntityFact]
    members: list[Member]
    _shapes: dict[tuple[str | None, str | None, str | None], tuple[object, ...]] = field(default_factory=dict)
    _chains: dict[str, list[str]] = field(default_factory=dict)

    def chain(self, uuid: str) -> list[str]:
        """The entity, then its ancestors up to the root."""
        if uuid not in self._chains:
            chain = [uuid]
            while (parent := self.entities[chain[-1]].parent) is not None:
                chain.append(parent)
            self._chains[uuid] = chain
        return self._chains[uuid]

    def shape(self, holder: str | None, bound: str | None, target: str | None) -> tuple[object, ...]:
        """The chains of the three entities as one tree, each node its type and marks, in a canonical order."""
        key = (holder, bound, target)
        if key not in self._shapes:
            self._shapes[key] = self._shape(holder, bound, target)
        return self._shapes[key]

    def _shape(self, holder: str | None, bound: str | None, target: str | None) -> tuple[object, ...]:
        marks: dict[str, str] = {}
        for mark, uuid in (("held", holder), ("bound", bound), ("target", target)):
            for node in self.chain(uuid) if uuid else []:
                marks[node] = marks.get(node, "") + (mark if node == uuid else "")
        children: dict[str | None, list[str]] = {}
        for node in marks:
            children.setdefault(self.entities[node].parent, []).append(node)

        def encode(node: str) -> tuple[object, ...]:
            return (self.entities[node].type, marks[node], tuple(sorted(encode(c) for c in children.get(node, []))))

        return tuple(sorted(encode(root) for root in children.get(None, [])))

    def position(self, target: str | None, anchor: str | None) -> str:
        """Where ``target`` sits relative to ``anchor`` (a held role or a binding): one of :data:`POSITIONS`."""
        if target is None:
            return "none"
        if anchor is None:
            return "other"
        if target == anchor:
            return "same"
        if target in self.chain(anchor):
            return "ancestor"
        if anchor in self.chain(target):
            return "descendant"
        parent = self.entities[target].parent
        return "sibling" if parent is not None and parent == self.entities[anchor].parent else "other"


def build_world(engine: PolicyEngine) -> World:
    """Generate the world of the policy loaded in ``engine`` and load it as the engine's facts.

    Entities: two of every root type; under an entity, two of every type that may sit under it, the first with
    everything that may sit under it in turn, the second (its sibling) alone. A type that may sit below itself
    appears up to :data:`NESTING_DEPTH` times on a chain, any other type once. Users: staff, a user with no role,
    and for every role and every entity of the type it is held on a user holding it there, live and expired.
    """
    types = engine.entity_types
    nesting = {name for name in types if _reaches(types, name, name)}
    entities: dict[str, EntityFact] = {}
    counters: dict[str, int] = {}

    def add(entity_type: str, parent: str | None) -> str:
        counters[entity_type] = counters.get(entity_type, 0) + 1
        uuid = f"{entity_type}-{counters[entity_type]}"  # types have no hyphen: names never collide
        entities[uuid] = EntityFact(uuid, entity_type, parent)
        return uuid

    def grow(parent: str, chain_types: list[str]) -> None:
        for child_type, parents in types.items():
            limit = NESTING_DEPTH if child_type in nesting else 1
            if entities[parent].type in parents and chain_types.count(child_type) < limit:
                first = add(child_type, parent)
                grow(first, [*chain_types, child_type])
                add(child_type, parent)

    for root_type in [name for name, parents in types.items() if not parents]:
        for _ in range(2):
            grow(add(root_type, None), [root_type])
    members = [Member("staff", 1, True), Member("nobody", 2, False)]
    for role in engine.roles.values():
        for entity in [e for e in entities.values() if e.type == role.scope_type]:
            for live in (True, False):
                name = f"{role.name.lower().replace('.', '-')}-{entity.uuid}{'' if live else '-expired'}"
                expires = None if live else NOW - timedelta(hours=1)
                assignment = AssignmentFact(name, len(members) + 1, role.name, entity.uuid, expires)
                members.append(Member(name, len(members) + 1, False, assignment))
    engine.replace_facts(entities.values(), [m.assignment for m in members if m.assignment is not None])
    return World(engine, entities, members)


def _reaches(types: Mapping[str, tuple[str, ...]], start: str, goal: str) -> bool:
    """Whether ``goal`` may sit (directly or further) above ``start``."""
    seen: set[str] = set()
    todo = list(types.get(start, ()))
    while todo:
        name = todo.pop()
        if name == goal:
            return True
        if name not in seen:
            seen.add(name)
            todo.extend(types.get(name, ()))
    return False


# --- proving -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Situation:
    """One point of the world an invariant is checked at.

    Attributes:
        member: The user asking.
        permission: The permission asked about.
        token: The PAT used (carrying ``permission``), or None for the user's full rights.
        bound: The entity the token is bound to, or None.
        target: The entity asked about, or None.
    """

    member: Member
    permission: str
    token: TokenLimits | None = None
    bound: str | None = None
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an invariant fared.

    Attributes:
        invariant: The invariant.
        decisions: How many answers of the evaluator were checked.
        counterexample: A situation where it does not hold, or None.
        observed: What the evaluator answered there, in words.
        scenario: The counterexample as a ``policy explain`` scenario (YAML text).
        error: Why it could not be checked (a quantifier naming nothing the policy declares), or None.
    """

    invariant: Invariant
    decisions: int
    counterexample: Situation | None = None
    observed: str = ""
    scenario: str = ""
    error: str | None = None

    @property
    def status(self) -> str:
        """``proved``, ``violated`` or ``error``."""
        return "error" if self.error else "violated" if self.counterexample else "proved"

    def headline(self) -> str:
        """``file:line: name: proved (N decisions)``, or what went wrong."""
        head = f"{self.invariant.where}: {self.invariant.name}"
        if self.error:
            return f"{head}: cannot be checked: {self.error}"
        if self.counterexample:
            return f"{head}: VIOLATED: {self.invariant.says}; {self.observed}"
        return f"{head}: proved ({self.decisions} decisions)"


class _Asker:
    """Puts questions to the engine, remembering the per-user answers (they do not depend on a target)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.engine = world.engine
        self._scopes: dict[int, list[str]] = {}
        self._targets: dict[int, dict[str, list[str]]] = {}

    def scopes(self, member: Member) -> list[str]:
        if member.user_id not in self._scopes:
            self._scopes[member.user_id] = self.engine.delegable_scopes(member.user_id, member.staff, NOW)
        return self._scopes[member.user_id]

    def targets(self, member: Member) -> dict[str, list[str]]:
        if member.user_id not in self._targets:
            self._targets[member.user_id] = self.engine.binding_targets(member.user_id, member.staff, NOW)
        return self._targets[member.user_id]

    def ask(self, question: str, s: Situation) -> bool:
        member = s.member
        if question == "allow":
            subject = Subject(member.user_id, member.staff, s.token)
            return self.engine.decide(subject, s.permission, s.target, NOW).allowed
        if question == "delegate":
            return s.permission in self.scopes(member)
        bind_types = self.targets(member).get(s.permission, [])
        if question == "bindable":
            return bool(bind_types)
        return s.target is not None and self.world.entities[s.target].type in bind_types

    def describe(self, question: str, s: Situation) -> str:
        """The evaluator's answer at ``s``, in words."""
        answer = self.ask(question, s)
        user = s.member.name
        if question == "allow":
            via = "" if s.token is None else f" via a token bound to {s.bound}" if s.bound else " via an unbound token"
            return f"{'ALLOW' if answer else 'DENY'} {user}{via} {s.permission} on {s.target or '(no entity)'}"
        if question == "delegate":
            return f"available_scopes of {user} {'includes' if answer else 'lacks'} {s.permission}"
        listed = ", ".join(self.targets(s.member).get(s.permission, [])) or "no type"
        return f"available_binding_targets of {user} binds {s.permission} to {listed}"


def _unknown_names(invariant: Invariant, engine: PolicyEngine) -> str | None:
    """The first pattern of an open quantifier that names nothing the policy declares, as a message."""
    declared = {
        "permission": list(engine.permissions),
        "role": list(engine.roles),
        "held_on": list(engine.entity_types),
        "target_type": list(engine.entity_types),
        "bound_to": list(engine.entity_types),
    }
    for key, names in declared.items():
        for pattern in invariant.select(key).patterns:
            if pattern != "none" and not any(fnmatchcase(name, pattern) for name in names):
                return f"{key} {pattern!r} matches nothing the policy declares"
    return None


def situations(world: World, invariant: Invariant) -> Iterator[Situation]:
    """The situations of ``world`` in the range of ``invariant``'s quantifiers, one of each shape.

    Two situations have the same shape when the user holds the same role (or none), as live, with the same staff
    flag, through the same kind of token, and the chains of the held-on, bound and target entities form the same
    marked tree (:meth:`World.shape`): the evaluator cannot tell them apart, so only the first is asked.
    """
    select = invariant.select
    permissions = [spec.name for spec in world.engine.permissions.values() if _in_range(invariant, spec)]
    seen: set[tuple[object, ...]] = set()
    for member in world.members:
        holder = member.holder
        if not (
            select("subject").matches("staff" if member.staff else "user")
            and select("role").matches(member.role)
            and select("held_on").matches(holder and world.entities[holder].type)
            and invariant.live in (None, member.live)
        ):
            continue
        for target, token, bound in _placements(world, invariant, holder):
            key = (member.role, member.live, member.staff, token, world.shape(holder, bound, target))
            if key not in seen:
                seen.add(key)
                bindings = frozenset({Binding(world.entities[bound].type, bound)} if bound else ())
                for permission in permissions:
                    limits = None if token == "none" else TokenLimits(frozenset({permission}), bindings)
                    yield Situation(member, permission, limits, bound, target)


def _in_range(invariant: Invariant, spec: PermissionSpec) -> bool:
    select = invariant.select
    return (
        select("permission").matches(spec.name)
        and select("delegation").matches(spec.delegation)
        and select("scope").matches("global" if spec.global_only else "entity")
    )


_Placement = tuple[str | None, str, str | None]  # target, kind of token (one of TOKENS), bound entity


def _placements(world: World, invariant: Invariant, holder: str | None) -> Iterator[_Placement]:
    """Targets and tokens in range for a role held on ``holder``: no token, an unbound one, one bound to each entity."""
    select = invariant.select
    if not invariant.asks & {"allow", "bind"}:
        yield None, "none", None
        return
    for target in [None, *world.entities]:
        if not (
            select("target").matches(world.position(target, holder))
            and select("target_type").matches(target and world.entities[target].type)
        ):
            continue
        if "allow" not in invariant.asks:
            if target is not None:
                yield target, "none", None
            continue
        unbound_in_range = not select("bound_to").patterns and not select("binding").patterns
        for kind in ("none", "unbound"):
            if unbound_in_range and select("token").matches(kind):
                yield target, kind, None
        if select("token").matches("bound"):
            for bound in world.entities:
                if select("bound_to").matches(world.entities[bound].type) and select("binding").matches(
                    world.position(target, bound)
                ):
                    yield target, "bound", bound


def prove(world: World, invariant: Invariant, policy_dir: Path) -> Outcome:
    """Check ``invariant`` at every situation of ``world``; stop at the first counterexample."""
    problem = _unknown_names(invariant, world.engine)
    if problem:
        return Outcome(invariant, 0, error=problem)
    asker = _Asker(world)
    decisions = checked = 0
    for situation in situations(world, invariant):
        if invariant.given is not None:
            decisions += 1
            if not asker.ask(invariant.given, situation):
                continue
        decisions += 1
        checked += 1
        if asker.ask(invariant.question, situation) is not invariant.expected:
            observed = asker.describe(invariant.question, situation)
            if invariant.given is not None:
                observed = f"{asker.describe(invariant.given, situation)}, and {observed}"
            scenario = counterexample_scenario(world, invariant, situation, observed, policy_dir)
            return Outcome(invariant, decisions, situation, observed, scenario)
    if not checked:  # true of nothing says nothing: the quantifiers (or the premise) exclude every situation
        return Outcome(invariant, decisions, error="no situation of the world is in range (nothing to prove)")
    return Outcome(invariant, decisions)


def prove_directory(directory: Path, invariants_file: Path | None = None) -> list[Outcome]:
    """Prove the invariants of ``invariants_file`` (default: the directory's own) against the rules of ``directory``.

    Raises:
        PolicyError: The rules do not load, or the invariants file is malformed.
    """
    invariants = load_invariants(invariants_file or directory / INVARIANTS_FILE)
    world = build_world(PolicyEngine.from_directory(directory, memo_size=1 << 20))
    return [prove(world, invariant, directory) for invariant in invariants]


# --- counterexamples -----------------------------------------------------------------------------------------


def counterexample_scenario(world: World, invariant: Invariant, s: Situation, observed: str, policy_dir: Path) -> str:
    """The situation ``s`` as a scenario file whose case ``policy explain --case counterexample`` explains.

    The case asks the invariant's question where it is answered wrongly: the decision, ``delegate`` (to an unbound
    token: what ``available_scopes`` lists) or ``bind`` (to the target's type; for ``bindable``, to the type of an
    entity of the first type listed, or of the held-on entity when none is). With a premise, a case ``premise``
    before it asks the premise's question, answered yes.
    """
    member = s.member
    asked = [*([("premise", invariant.given)] if invariant.given else []), (CASE, invariant.question)]
    cases = [(name, "bind" if q == "bindable" else q, _case_entity(world, q, s)) for name, q in asked]
    token = s.token if any(question == "allow" for _, question, _ in cases) else None
    bound_to = [b.uuid for b in token.bindings] if token else []
    needed = {node for uuid in (*(e for _, _, e in cases), *bound_to) if uuid for node in world.chain(uuid)}
    if member.assignment:
        needed.update(world.chain(member.assignment.entity))
    token_name = f"{member.name}-token"
    lines = [
        f"# Counterexample to invariant {invariant.name} ({invariant.where}): {invariant.says}",
        f"# Observed: {observed}.",
        f"# Explain: tokengate policy explain --scenario THIS_FILE --case {CASE} --policy-dir {policy_dir}"
        + (" (and --case premise)" if invariant.given else ""),
        f"now: {NOW:%Y-%m-%dT%H:%M:%SZ}",
        f"users: {{{member.name}: {{{'staff: true' if member.staff else ''}}}}}",
        "entities:",
    ]
    for uuid, entity in world.entities.items():
        if uuid in needed:
            parent = f"{{type: {entity.type}, parent: {entity.parent}}}" if entity.parent else entity.type
            lines.append(f"  {uuid}: {parent}")
    lines.append("assignments:" if member.assignment else "assignments: []")
    if member.assignment:
        a = member.assignment
        expires = f", expires: {a.expires_at:%Y-%m-%dT%H:%M:%SZ}" if a.expires_at else ""
        lines.append(f"  - {{user: {member.name}, role: {a.role}, entity: {a.entity}{expires}, name: {a.uuid}}}")
    if token is None:
        lines.append("tokens: {}")
    else:
        bound = ", ".join(sorted(bound_to))
        lines += ["tokens:", f"  {token_name}: {{user: {member.name}, scopes: [{s.permission}], bound: [{bound}]}}"]
    lines.append("cases:")
    for name, question, on in cases:
        by_token = question == "allow" and token is not None
        subject = Subject(member.user_id, member.staff, token if by_token else None)
        decision = ask(world.engine, question, subject, s.permission, on, NOW)
        asks = "" if question == "allow" else f"question: {question}, "
        lines.append(
            f"  - {{name: {name}, {asks}subject: {token_name if by_token else member.name}, "
            f"permission: {s.permission}, entity: {on or '~'}, expect: {'allow' if decision.allowed else 'deny'}, "
            f"clause: {decision.clause}}}"
        )
    return "\n".join(lines) + "\n"


def _case_entity(world: World, question: str, s: Situation) -> str | None:
    """The entity a counterexample's case for ``question`` asks about (see :func:`counterexample_scenario`)."""
    if question in ("allow", "bind"):
        return s.target
    if question == "delegate":
        return None
    listed = world.engine.binding_targets(s.member.user_id, s.member.staff, NOW).get(s.permission, [])
    of_type = [uuid for uuid, entity in world.entities.items() if entity.type in listed[:1]]
    return of_type[0] if of_type else s.member.holder or next(iter(world.entities))


# --- the running service -------------------------------------------------------------------------------------


class InvariantStatus(msgspec.Struct, kw_only=True):
    """An invariant of the running policy and whether it holds."""

    name: str
    says: str
    source: str
    """``file:line`` of the invariant."""
    status: str
    """``proved``, ``violated`` or ``error``."""
    decisions: int
    """How many answers of the evaluator were checked."""
    detail: str
    """Empty when proved; the observed answer and the counterexample scenario, or why it cannot be checked."""


class InvariantReport(msgspec.Struct, kw_only=True):
    """The invariants file of the policy directory and the status of each invariant."""

    file: str
    problem: str | None
    """``file:line: message`` when the file (or the policy) does not load; then ``invariants`` is empty."""
    invariants: list[InvariantStatus]


def report(directory: Path) -> InvariantReport:
    """The invariants of ``directory`` proved against its rules; remembered while its files stay the same."""
    digest = hashlib.sha256()
    for path in sorted([*directory.glob("*.csv"), directory / "model.conf", directory / INVARIANTS_FILE]):
        digest.update(path.name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return _report(str(directory), digest.hexdigest())


@lru_cache(maxsize=4)
def _report(directory: str, fingerprint: str) -> InvariantReport:
    path = Path(directory)

    def shown(text: str) -> str:
        """Files named as decisions name them (``policies/roles.csv:21``): callers never see the server's paths."""
        return text.replace(str(path), path.name)

    file = shown(str(path / INVARIANTS_FILE))
    if not (path / INVARIANTS_FILE).is_file():
        return InvariantReport(file=file, problem=None, invariants=[])
    try:
        outcomes = prove_directory(path)
    except PolicyError as exc:
        return InvariantReport(file=file, problem=shown(str(exc)), invariants=[])
    return InvariantReport(
        file=file,
        problem=None,
        invariants=[
            InvariantStatus(
                name=o.invariant.name,
                says=o.invariant.says,
                source=shown(o.invariant.where),
                status=o.status,
                decisions=o.decisions,
                detail=shown(o.error or (f"{o.observed}\n{o.scenario}" if o.counterexample else "")),
            )
            for o in outcomes
        ],
    )


# --- reports for the command line ----------------------------------------------------------------------------


def assert_lines(outcomes: list[Outcome], seconds: float, policy_dir: Path, write_dir: Path | None = None) -> list[str]:
    """What ``policy assert`` prints: one headline per invariant, each counterexample under its headline, a total.

    With ``write_dir``, each counterexample is also saved there as ``NAME.yaml``.
    """
    lines: list[str] = []
    for outcome in outcomes:
        lines.append(outcome.headline())
        if outcome.counterexample is None:
            continue
        if write_dir is not None:
            write_dir.mkdir(parents=True, exist_ok=True)
            path = write_dir / f"{outcome.invariant.name}.yaml"
            path.write_text(outcome.scenario, encoding="utf-8")
            command = f"tokengate policy explain --scenario {path} --case {CASE} --policy-dir {policy_dir}"
            lines.append(f"    written to {path}: {command}")
        lines.extend(f"    {line}" for line in outcome.scenario.splitlines())
    proved = sum(o.status == "proved" for o in outcomes)
    decisions = sum(o.decisions for o in outcomes)
    lines.append(
        f"{len(outcomes)} invariants: {proved} proved, {len(outcomes) - proved} not ({decisions} decisions, "
        f"{seconds:.1f} s)"
    )
    return lines


def broken_by(old: Path, new: Path) -> list[str]:
    """``! NAME ...`` for each invariant of ``old`` that holds on ``old`` and no longer on ``new``.

    Raises:
        PolicyError: A policy does not load, or the invariants file of ``old`` is malformed.
    """
    invariants_file = old / INVARIANTS_FILE
    if not invariants_file.is_file():
        return []
    after = [o for o in prove_directory(new, invariants_file) if o.status != "proved"]
    if not after:
        return []
    before = {o.invariant.name: o.status for o in prove_directory(old, invariants_file)}
    return [
        f"! breaks invariant {o.invariant.name} ({o.invariant.where}): {o.invariant.says}; "
        + (o.observed or o.error or "")
        for o in after
        if before.get(o.invariant.name) == "proved"
    ]
