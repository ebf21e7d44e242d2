"""The static rules read from ``policies/``: permissions, roles and entity types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.policy.grants import GrantMatcher


@dataclass(frozen=True, slots=True)
class PermissionSpec:
    """A permission declared by a ``p3`` line, with its ``p4`` bind types.

    Attributes:
        name: Permission name, e.g. ``PROJECT.UPDATE``.
        description: One sentence for ``available_scopes``.
        delegable: Whether some token may carry it (delegation is ``token`` or ``staff``).
        bind_types: Entity types a token may bind it to, in declaration order.
        global_only: Checked without an entity, held by staff only, never bindable.
        delegation: ``token`` (anyone holding it), ``staff`` (staff only) or ``never``.
        source: ``file:line`` of the declaration.
    """

    name: str
    description: str
    delegable: bool
    bind_types: tuple[str, ...]
    global_only: bool
    delegation: str
    source: str


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A role declared by a ``p2`` line, with the permissions its ``p`` lines grant.

    Attributes:
        name: Role name, e.g. ``CUSTOMER.OWNER``.
        scope_type: Entity type the role is held on.
        description: One sentence for people granting the role.
        permissions: Granted permissions, in grant-line order.
        source: ``file:line`` of the declaration.
    """

    name: str
    scope_type: str
    description: str
    permissions: tuple[str, ...]
    source: str


@dataclass(frozen=True, slots=True)
class Rules:
    """One consistent, immutable load of a policy directory.

    Attributes:
        permissions: Permission name -> spec, in declaration order.
        roles: Role name -> spec, in declaration order.
        entity_types: Entity type -> allowed parent types (empty for a root type).
        grant_sources: (role, permission) -> ``file:line`` of the grant rule.
        matcher: The Casbin evaluator of the grant rules.
    """

    permissions: Mapping[str, PermissionSpec]
    roles: Mapping[str, RoleSpec]
    entity_types: Mapping[str, tuple[str, ...]]
    grant_sources: Mapping[tuple[str, str], str]
    matcher: GrantMatcher
