"""The review matrix: every role against every permission, with bind types, delegation and the entity hierarchy.

Every cell is Casbin's answer, not a reading of the tables: the matrix is asked of a probe world in which each
role is held by a user of its own on an entity of its type, above one entity of every type that may sit below it.
An edit of ``model.conf`` alone (a permission that stops at the held entity, delegation only on it, a narrower
matcher) shows in the matrix as it shows in decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import msgspec

from service.policy.catalog import Rules
from service.policy.engine import PolicyEngine
from service.policy.evaluator import sample_subtree
from service.policy.facts import AssignmentFact, EntityFact


class EntityTypeRow(msgspec.Struct, kw_only=True):
    """An entity type and where it may sit."""

    name: str
    parents: list[str]
    """Allowed parent types; empty for a root type."""


class PermissionRow(msgspec.Struct, kw_only=True):
    """A permission as a reviewer sees it."""

    name: str
    description: str
    scope: str
    """``entity`` or ``global``."""
    delegation: str
    """``token``, ``staff`` or ``never``."""
    bind_types: list[str]
    """Entity types a token may bind the permission to."""
    granted_by: list[str]
    """Roles granting it, in role order."""


class RoleRow(msgspec.Struct, kw_only=True):
    """A role, where it is held and what it grants."""

    name: str
    entity_type: str
    """The type of entity the role is held on."""
    applies_to: list[str]
    """Entity types its grants reach: its own and every type that may sit below it."""
    description: str
    permissions: list[str]
    """Permissions granted on the entity the role is held on."""
    reaches: dict[str, list[str]]
    """Permission -> the entity types (the role's own and below) on which holding the role grants it."""
    delegates: dict[str, list[str]]
    """Permission -> the entity types (the role's own and below) a holder may bind a token carrying it to."""


class PolicyMatrix(msgspec.Struct, kw_only=True):
    """Roles against permissions, with the hierarchy the grants are inherited along."""

    entity_types: list[EntityTypeRow]
    permissions: list[PermissionRow]
    roles: list[RoleRow]


def descendant_types(entity_types: Mapping[str, tuple[str, ...]], start: str) -> list[str]:
    """Return ``start`` and every type that may sit below it, in declaration order."""
    reached = {start}
    changed = True
    while changed:
        changed = False
        for child, parents in entity_types.items():
            if child not in reached and reached.intersection(parents):
                reached.add(child)
                changed = True
    return [name for name in entity_types if name in reached]


_PROBE_TIME = datetime(2000, 1, 1, tzinfo=UTC)
_STAFF = 0  # the probe's staff user; role holders are 1, 2, ...


class _Probe:
    """The probe world: for role number i, user i holds it on ``i:TYPE``, with ``i:TYPE/...`` below it."""

    def __init__(self, rules: Rules) -> None:
        self.engine = PolicyEngine(rules, memo_size=0)
        self.subtrees: dict[str, list[EntityFact]] = {}
        entities: list[EntityFact] = []
        assignments = []
        for number, role in enumerate(rules.roles.values(), 1):
            subtree = sample_subtree(rules.entity_types, role.scope_type, f"{number}:")
            self.subtrees[role.name] = subtree
            entities += subtree
            assignments.append(AssignmentFact(f"{number}", number, role.name, subtree[0].uuid, None))
        self.engine.replace_facts(entities, assignments)
        self.holder = {role: number for number, role in enumerate(rules.roles, 1)}

    def reaches(self, role: str, permission: str) -> list[str]:
        user = self.holder[role]
        granted = (e for e in self.subtrees[role] if self.engine.holds(user, False, permission, e.uuid, _PROBE_TIME))
        return _types(granted, self.engine.entity_types)

    def delegates(self, role: str, permission: str) -> list[str]:
        user, engine = self.holder[role], self.engine
        bindable = (
            e
            for e in self.subtrees[role]
            if engine.may_bind(permission, e.type) and engine.may_delegate(user, False, permission, e.uuid, _PROBE_TIME)
        )
        return _types(bindable, engine.entity_types)

    def delegation(self, permission: str, holders: list[str], declared: str) -> str:
        """``token`` if a holder may put it in a token, ``staff`` if only staff may, else ``never``."""
        engine = self.engine
        if any(engine.may_delegate(self.holder[role], False, permission, "", _PROBE_TIME) for role in holders):
            return "token"
        if not engine.may_delegate(_STAFF, True, permission, "", _PROBE_TIME):
            return "never"
        return "staff" if holders else declared  # nobody holds it: the model cannot tell token from staff


def _types(entities: Iterable[EntityFact], order: Mapping[str, object]) -> list[str]:
    """The types of ``entities``, in declaration order."""
    found = {e.type for e in entities}
    return [name for name in order if name in found]


def build_matrix(rules: Rules) -> PolicyMatrix:
    """Build the matrix of a loaded policy by asking its model."""
    probe = _Probe(rules)
    roles = list(rules.roles.values())
    reaches = {role.name: {p: probe.reaches(role.name, p) for p in rules.permissions} for role in roles}
    granted = {role.name: [p for p, types in reaches[role.name].items() if role.scope_type in types] for role in roles}
    rows = []
    for role in roles:
        delegates = {p: probe.delegates(role.name, p) for p in rules.permissions}
        rows.append(
            RoleRow(
                name=role.name,
                entity_type=role.scope_type,
                applies_to=descendant_types(rules.entity_types, role.scope_type),
                description=role.description,
                permissions=granted[role.name],
                reaches={p: types for p, types in reaches[role.name].items() if types},
                delegates={p: types for p, types in delegates.items() if types},
            )
        )
    permissions = []
    for spec in rules.permissions.values():
        holders = [role.name for role in roles if spec.name in granted[role.name]]
        permissions.append(
            PermissionRow(
                name=spec.name,
                description=spec.description,
                scope="global" if spec.global_only else "entity",
                delegation=probe.delegation(spec.name, holders, spec.delegation),
                bind_types=[t for t in rules.entity_types if probe.engine.may_bind(spec.name, t)],
                granted_by=holders,
            )
        )
    return PolicyMatrix(
        entity_types=[EntityTypeRow(name=name, parents=list(p)) for name, p in rules.entity_types.items()],
        permissions=permissions,
        roles=rows,
    )
