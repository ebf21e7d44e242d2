"""Scenario files: a small world (users, entities, role assignments, tokens) and decision cases, in YAML.

Policy authors keep them next to the rules (``policies/tests/*.yaml``); ``tokengate policy test`` runs the cases
and ``tokengate policy explain --scenario`` explains one. Names stand for ids and uuids, so explanations read
``apollo``, not a uuid. Every case remembers its line, so a failure points at ``file:line``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from service.policy.engine import PolicyEngine
from service.policy.errors import PolicyError
from service.policy.facts import AssignmentFact, Binding, EntityFact, Subject, TokenLimits
from service.policy_tools.explain import QUESTIONS
from service.timeutil import as_utc

EXPECTATIONS = {"allow": True, "deny": False}
_CASE_FIELDS = ("subject", "permission", "entity", "expect", "clause")


@dataclass(frozen=True, slots=True)
class Case:
    """One question and the answer the author expects.

    Attributes:
        file: Path of the scenario file.
        line: Line of the case in it.
        subject: A user or token name of the scenario.
        permission: Permission asked for.
        entity: Entity name, or None for a check without a target (``delegate``: the entity the token is bound
            to, None for an unbound token).
        allowed: Expected outcome.
        clause: Expected deciding clause, if the author pinned it.
        now: Time of the question.
        name: Optional name, to pick the case for ``explain``.
        question: What is asked (see :func:`service.policy_tools.explain.ask`): ``allow`` (the decision),
            ``delegate`` (may the user put the permission in a token bound to the entity, or in an unbound one),
            ``bind`` (may the user's token bind the permission to the entity's type).
    """

    file: str
    line: int
    subject: str
    permission: str
    entity: str | None
    allowed: bool
    clause: str | None
    now: datetime
    name: str | None = None
    question: str = "allow"

    @property
    def where(self) -> str:
        """``file:line`` of the case."""
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class Scenario:
    """The world of a scenario file and its cases.

    Attributes:
        file: Path of the file.
        now: Default time of every case.
        users: User name -> (user id, is staff).
        entities: Entity name -> fact (names serve as uuids).
        assignments: Role assignments, named.
        tokens: Token name -> (owner name, limits).
        cases: The cases, in file order.
        lines: ``section/name`` -> line, to locate problems in the world.
    """

    file: str
    now: datetime
    users: dict[str, tuple[int, bool]] = field(default_factory=dict)
    entities: dict[str, EntityFact] = field(default_factory=dict)
    assignments: list[AssignmentFact] = field(default_factory=list)
    tokens: dict[str, tuple[str, TokenLimits]] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)

    def subject(self, name: str) -> Subject:
        """The subject a user or token name stands for."""
        owner, token = self.tokens.get(name, (name, None))
        user_id, staff = self.users[owner]
        return Subject(user_id, staff, token)

    def user_name(self, user_id: int) -> str:
        """The name of the user with ``user_id``."""
        return next(name for name, (uid, _) in self.users.items() if uid == user_id)

    def find_case(self, key: str) -> Case:
        """Return the case named ``key``, or the one on line ``key``.

        Raises:
            KeyError: No such case.
        """
        for case in self.cases:
            if key in (case.name, str(case.line)):
                return case
        raise KeyError(key)

    def engine(self, directory: Path) -> PolicyEngine:
        """Load the rules of ``directory`` and this world into a new engine (no memo: each case is fresh).

        Raises:
            PolicyError: The rules do not load, or the world does not fit them (unknown role or type, misplaced
                entity, role held on the wrong type).
        """
        engine = PolicyEngine.from_directory(directory, memo_size=0)
        for name, entity in self.entities.items():
            parent_type = self.entities[entity.parent].type if entity.parent else None
            if not engine.may_parent(entity.type, parent_type):
                where = "at the root" if parent_type is None else f"under a {parent_type}"
                self._fail(f"entities/{name}", f"a {entity.type} may not sit {where}")
        for assignment in self.assignments:
            role = engine.roles.get(assignment.role)
            if role is None:
                self._fail(f"assignments/{assignment.uuid}", f"unknown role {assignment.role}")
            elif role.scope_type != self.entities[assignment.entity].type:
                self._fail(f"assignments/{assignment.uuid}", f"{role.name} is held on a {role.scope_type}")
        engine.replace_facts(self.entities.values(), self.assignments)
        return engine

    def _fail(self, key: str, message: str) -> None:
        raise PolicyError(self.file, self.lines.get(key, 0), message)


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file.

    Raises:
        PolicyError: The file is not valid YAML or does not describe a scenario; located by line.
    """
    text = path.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(str(path), mark.line + 1 if mark else 0, f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise PolicyError(str(path), 1, "a scenario is a mapping with users, entities, assignments, tokens, cases")
    return _Reader(str(path), data, node).read()


def _at(value: Any) -> datetime:
    """A YAML timestamp as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError("expected a timestamp such as 2030-01-01T12:00:00Z")
    return as_utc(value)


class _Reader:
    """Turns the constructed YAML into a :class:`Scenario`, keeping the line of every item."""

    def __init__(self, file: str, data: dict[str, Any], node: yaml.MappingNode) -> None:
        self.file, self.data = file, data
        self.lines: dict[str, int] = {}
        for key, value in node.value:
            self.lines[key.value] = key.start_mark.line + 1
            if isinstance(value, yaml.MappingNode):
                for item_key, _ in value.value:
                    self.lines[f"{key.value}/{item_key.value}"] = item_key.start_mark.line + 1
            elif isinstance(value, yaml.SequenceNode):
                for index, item in enumerate(value.value):
                    self.lines[f"{key.value}/{index}"] = item.start_mark.line + 1

    def fail(self, key: str, message: str) -> PolicyError:
        return PolicyError(self.file, self.lines.get(key, 1), message)

    def section(self, name: str, kind: type) -> Any:
        value = self.data.get(name) or kind()
        if not isinstance(value, kind):
            raise self.fail(name, f"{name} must be a {'mapping' if kind is dict else 'list'}")
        return value

    def read(self) -> Scenario:
        unknown = set(self.data) - {"now", "users", "entities", "assignments", "tokens", "cases"}
        if unknown:
            raise self.fail(sorted(unknown)[0], f"unknown section {sorted(unknown)[0]!r}")
        try:
            now = _at(self.data["now"]) if "now" in self.data else datetime.now(UTC)
        except (TypeError, ValueError) as exc:
            raise self.fail("now", f"now: {exc}") from exc
        scenario = Scenario(file=self.file, now=now, lines=self.lines)
        self.users(scenario)
        self.entities(scenario)
        self.assignments(scenario)
        self.tokens(scenario)
        self.cases(scenario)
        return scenario

    def users(self, scenario: Scenario) -> None:
        for index, (name, spec) in enumerate(self.section("users", dict).items(), 1):
            spec = spec or {}
            if not isinstance(spec, dict) or set(spec) - {"staff"}:
                raise self.fail(f"users/{name}", "a user is {} or {staff: true}")
            scenario.users[str(name)] = (index, bool(spec.get("staff", False)))

    def entities(self, scenario: Scenario) -> None:
        entities = self.section("entities", dict)
        for name, spec in entities.items():
            spec = {"type": spec} if isinstance(spec, str) else spec
            if not isinstance(spec, dict) or "type" not in spec or set(spec) - {"type", "parent"}:
                raise self.fail(f"entities/{name}", "an entity is TYPE or {type: TYPE, parent: NAME}")
            parent = spec.get("parent")
            if parent is not None and parent not in entities:
                raise self.fail(f"entities/{name}", f"unknown parent entity {parent!r}")
            scenario.entities[str(name)] = EntityFact(str(name), str(spec["type"]), parent)

    def assignments(self, scenario: Scenario) -> None:
        for index, spec in enumerate(self.section("assignments", list)):
            key = f"assignments/{index}"
            if not isinstance(spec, dict) or not {"user", "role", "entity"} <= set(spec) <= {
                "user",
                "role",
                "entity",
                "expires",
                "name",
            }:
                raise self.fail(key, "an assignment is {user, role, entity} with optional expires and name")
            if spec["user"] not in scenario.users or spec["entity"] not in scenario.entities:
                raise self.fail(key, f"unknown user {spec['user']!r} or entity {spec['entity']!r}")
            try:
                expires = _at(spec["expires"]) if spec.get("expires") is not None else None
            except (TypeError, ValueError) as exc:
                raise self.fail(key, f"expires: {exc}") from exc
            uuid = str(spec.get("name") or f"{spec['user']}:{spec['role']}@{spec['entity']}")
            self.lines[f"assignments/{uuid}"] = self.lines[key]
            user_id = scenario.users[spec["user"]][0]
            scenario.assignments.append(AssignmentFact(uuid, user_id, str(spec["role"]), spec["entity"], expires))

    def tokens(self, scenario: Scenario) -> None:
        for name, spec in self.section("tokens", dict).items():
            key = f"tokens/{name}"
            if not isinstance(spec, dict) or "user" not in spec or set(spec) - {"user", "scopes", "bound"}:
                raise self.fail(key, "a token is {user, scopes: [...], bound: [...]}")
            if name in scenario.users or spec["user"] not in scenario.users:
                raise self.fail(key, f"token {name!r} must not be named like a user, and needs a known user")
            bound = [str(b) for b in spec.get("bound") or []]
            missing = [b for b in bound if b not in scenario.entities]
            if missing:
                raise self.fail(key, f"unknown bound entity {missing[0]!r}")
            bindings = frozenset(Binding(scenario.entities[b].type, b) for b in bound)
            limits = TokenLimits(frozenset(str(s) for s in spec.get("scopes") or []), bindings)
            scenario.tokens[str(name)] = (str(spec["user"]), limits)

    def cases(self, scenario: Scenario) -> None:
        for index, spec in enumerate(self.section("cases", list)):
            key = f"cases/{index}"
            if isinstance(spec, list) and len(spec) in (4, 5):
                spec = dict(zip(_CASE_FIELDS, spec, strict=False))
            if not isinstance(spec, dict) or set(spec) - {*_CASE_FIELDS, "now", "name", "question"}:
                raise self.fail(key, "a case is [SUBJECT, PERMISSION, ENTITY, allow|deny, CLAUSE?] or a mapping")
            question = spec.get("question", "allow")
            if question not in QUESTIONS:
                raise self.fail(key, f"question must be one of {', '.join(QUESTIONS)}")
            if question != "allow" and spec.get("subject") not in scenario.users:
                raise self.fail(key, f"a {question} case asks about a user, not a token")
            if question == "bind" and spec.get("entity") not in scenario.entities:
                raise self.fail(key, "a bind case needs an entity: it asks about the entity's type")
            if spec.get("subject") not in scenario.users and spec.get("subject") not in scenario.tokens:
                raise self.fail(key, f"unknown user or token {spec.get('subject')!r}")
            if spec.get("expect") not in EXPECTATIONS:
                raise self.fail(key, "expect must be allow or deny")
            entity = spec.get("entity")
            if entity is not None and entity not in scenario.entities and spec.get("clause") != "unknown-entity":
                raise self.fail(key, f"unknown entity {entity!r} (expect clause unknown-entity to ask about one)")
            try:
                now = _at(spec["now"]) if "now" in spec else scenario.now
            except (TypeError, ValueError) as exc:
                raise self.fail(key, f"now: {exc}") from exc
            scenario.cases.append(
                Case(
                    self.file,
                    self.lines[key],
                    str(spec["subject"]),
                    str(spec["permission"]),
                    None if entity is None else str(entity),
                    EXPECTATIONS[spec["expect"]],
                    spec.get("clause"),
                    now,
                    spec.get("name"),
                    question,
                )
            )
