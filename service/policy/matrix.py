"""The review matrix: every role against every permission, with bind types, delegation and the entity hierarchy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import msgspec

from service.policy.catalog import PermissionSpec, RoleSpec


class Catalogue(Protocol):
    """What the matrix is built from: :class:`~service.policy.catalog.Rules` or a running ``PolicyEngine``."""

    @property
    def permissions(self) -> Mapping[str, PermissionSpec]:
        """Permission name -> spec."""
        ...

    @property
    def roles(self) -> Mapping[str, RoleSpec]:
        """Role name -> spec."""
        ...

    @property
    def entity_types(self) -> Mapping[str, tuple[str, ...]]:
        """Entity type -> allowed parent types."""
        ...


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


def build_matrix(catalogue: Catalogue) -> PolicyMatrix:
    """Build the matrix of a loaded policy."""
    roles = catalogue.roles.values()
    return PolicyMatrix(
        entity_types=[EntityTypeRow(name=name, parents=list(p)) for name, p in catalogue.entity_types.items()],
        permissions=[
            PermissionRow(
                name=spec.name,
                description=spec.description,
                scope="global" if spec.global_only else "entity",
                delegation=spec.delegation,
                bind_types=list(spec.bind_types),
                granted_by=[role.name for role in roles if spec.name in role.permissions],
            )
            for spec in catalogue.permissions.values()
        ],
        roles=[
            RoleRow(
                name=role.name,
                entity_type=role.scope_type,
                applies_to=descendant_types(catalogue.entity_types, role.scope_type),
                description=role.description,
                permissions=list(role.permissions),
            )
            for role in roles
        ],
    )
