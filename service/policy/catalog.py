"""The static rules read from ``policies/``: the model, permissions, roles and entity types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
        model_text: Contents of ``model.conf``.
        model_file: Path of ``model.conf``, as it was opened.
        matchers: Matcher name -> its lines in ``model.conf`` as ``(line number, text)``.
        declarations: Policy type -> the fields of each of its lines in the policy files, in file order.
    """

    permissions: Mapping[str, PermissionSpec]
    roles: Mapping[str, RoleSpec]
    entity_types: Mapping[str, tuple[str, ...]]
    grant_sources: Mapping[tuple[str, str], str]
    model_text: str
    model_file: str
    matchers: Mapping[str, list[tuple[int, str]]]
    declarations: Mapping[str, list[tuple[str, ...]]]
