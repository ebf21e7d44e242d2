"""An independent reading of the access rule, written as plain Python: the oracle the Casbin model is compared to.

This is how the engine decided before ``policies/model.conf`` expressed the whole rule: the clause chain, the
ancestor walk, delegation and bind types, spelled out over plain lists of facts. It shares nothing with the engine
but the parsed catalogue (permissions, roles, entity types).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from service.policy.catalog import Rules
from service.policy.facts import AssignmentFact, EntityFact, Subject


class Reference:
    """Decides like the access rule says, by brute force."""

    def __init__(self, rules: Rules, entities: Iterable[EntityFact], assignments: Iterable[AssignmentFact]) -> None:
        self.rules = rules
        self.entities = {entity.uuid: entity for entity in entities}
        self.assignments = list(assignments)

    def chain(self, uuid: str) -> list[str]:
        """The entity and its ancestors, nearest first; empty for an unknown entity."""
        chain: list[str] = []
        current: str | None = uuid
        while current is not None and current in self.entities and current not in chain:
            chain.append(current)
            current = self.entities[current].parent
        return chain

    def live(self, user_id: int, now: datetime) -> list[AssignmentFact]:
        return [
            a
            for a in self.assignments
            if a.user_id == user_id and (a.expires_at is None or now < a.expires_at) and a.entity in self.entities
        ]

    def grants(self, role: str, permission: str) -> bool:
        spec = self.rules.roles.get(role)
        return spec is not None and permission in spec.permissions

    def decide(self, s: Subject, permission: str, entity: str | None, now: datetime) -> tuple[bool, str]:
        """``(allowed, clause)``."""
        spec = self.rules.permissions.get(permission)
        if spec is None:
            return False, "unknown-permission"
        if s.token is not None:
            if permission not in s.token.scopes or not spec.delegable:
                return False, "token-scope"
            if s.token.bindings:
                if spec.global_only:  # a global permission is never passed through a bound token
                    return False, "token-binding"
                chain = self.chain(entity) if entity is not None else []
                bound = [
                    b
                    for b in s.token.bindings
                    if not b.deleted and b.uuid in chain and self.entities[b.uuid].type == b.type
                ]
                if not bound:
                    return False, "token-binding"
        if entity is not None and entity not in self.entities:
            return False, "unknown-entity"
        if spec.global_only:
            return s.is_staff, "global-permission"
        if s.is_staff:
            return True, "staff"
        if entity is None:
            return False, "no-entity"
        chain = self.chain(entity)
        granted = any(a.entity in chain and self.grants(a.role, permission) for a in self.live(s.user_id, now))
        return granted, "role"

    def nearest_granting(self, user_id: int, permission: str, entity: str, now: datetime) -> str | None:
        """The uuid of the granting assignment held nearest ``entity``."""
        for node in self.chain(entity):
            for a in self.live(user_id, now):
                if a.entity == node and self.grants(a.role, permission):
                    return a.uuid
        return None

    def delegable_scopes(self, user_id: int, is_staff: bool, now: datetime) -> list[str]:
        permissions = self.rules.permissions
        if is_staff:
            return [name for name, spec in permissions.items() if spec.delegable]
        granted = {p for a in self.live(user_id, now) for p in permissions if self.grants(a.role, p)}
        return [name for name, spec in permissions.items() if name in granted and spec.delegation == "token"]

    def may_delegate(self, user_id: int, is_staff: bool, permission: str, entity: str, now: datetime) -> bool:
        """May the user put ``permission`` in a token bound to ``entity``: delegable and held there."""
        if permission not in self.delegable_scopes(user_id, is_staff, now):
            return False
        if is_staff:
            return True
        chain = self.chain(entity)
        return any(a.entity in chain and self.grants(a.role, permission) for a in self.live(user_id, now))

    def binding_targets(self, user_id: int, is_staff: bool, now: datetime) -> dict[str, list[str]]:
        permissions = self.rules.permissions
        if is_staff:
            return {n: sorted(s.bind_types) for n, s in permissions.items() if s.delegable and s.bind_types}
        targets: dict[str, set[str]] = {}
        for a in self.live(user_id, now):
            entity_type = self.entities[a.entity].type
            for name, spec in permissions.items():
                if self.grants(a.role, name) and spec.delegation == "token" and entity_type in spec.bind_types:
                    targets.setdefault(name, set()).add(entity_type)
        return {name: sorted(targets[name]) for name in permissions if name in targets}
