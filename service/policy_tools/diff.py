"""``policy diff``: the effective change between two versions of the rules, for a reviewer to approve.

Only what changes decisions or delegation is reported: entity types and parent links, permissions (scope,
delegation, bind types), roles (their entity type), the grants of each role, how far down each grant reaches and
where a holder may bind it. The matrices compared are Casbin's answers, so two directories that differ only in
``model.conf`` show their effective difference. Comments, descriptions and line order are not reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from service.policy_tools.matrix import PolicyMatrix


def diff_matrices(old: PolicyMatrix, new: PolicyMatrix) -> list[str]:
    """Return one line per effective change from ``old`` to ``new``; empty when they decide alike.

    Lines start with ``+`` (added or gained), ``-`` (removed or lost) or ``~`` (changed).
    """
    return [*_entity_types(old, new), *_permissions(old, new), *_roles(old, new)]


def _changes(old: Iterable[str], new: Iterable[str]) -> str:
    """``+a -b`` for the items added to and removed from a list."""
    before, after = list(old), list(new)
    return " ".join([*(f"+{x}" for x in after if x not in before), *(f"-{x}" for x in before if x not in after)])


class _Named(Protocol):
    name: str


NamedT = TypeVar("NamedT", bound=_Named)


@dataclass(frozen=True)
class _Versions(Generic[NamedT]):
    """The rows of one kind in both versions, by name."""

    before: dict[str, NamedT]
    after: dict[str, NamedT]

    @classmethod
    def of(cls, old: Iterable[NamedT], new: Iterable[NamedT]) -> _Versions[NamedT]:
        return cls({row.name: row for row in old}, {row.name: row for row in new})

    @property
    def added(self) -> list[NamedT]:
        """Rows only in the new version, in its file order."""
        return [row for name, row in self.after.items() if name not in self.before]

    @property
    def removed(self) -> list[NamedT]:
        """Rows only in the old version, in its file order."""
        return [row for name, row in self.before.items() if name not in self.after]

    @property
    def kept(self) -> list[tuple[NamedT, NamedT]]:
        """``(old, new)`` for the names in both, in the new file order."""
        return [(self.before[name], row) for name, row in self.after.items() if name in self.before]


def _entity_types(old: PolicyMatrix, new: PolicyMatrix) -> list[str]:
    versions = _Versions.of(old.entity_types, new.entity_types)
    lines = [
        f"+ entity type {t.name} ({'root' if not t.parents else 'under ' + ', '.join(t.parents)})"
        for t in versions.added
    ]
    lines += [f"- entity type {t.name}" for t in versions.removed]
    changed = [(a, b) for a, b in versions.kept if set(a.parents) != set(b.parents)]
    lines += [f"~ entity type {b.name}: parents {_changes(a.parents, b.parents)}" for a, b in changed]
    return lines


def _permissions(old: PolicyMatrix, new: PolicyMatrix) -> list[str]:
    versions = _Versions.of(old.permissions, new.permissions)
    lines = []
    for p in versions.added:
        binds = f", binds to {', '.join(p.bind_types)}" if p.bind_types else ""
        lines.append(f"+ permission {p.name} ({p.scope}, delegation {p.delegation}{binds})")
    lines += [f"- permission {p.name}" for p in versions.removed]
    for a, b in versions.kept:
        name = b.name
        if a.scope != b.scope:
            lines.append(f"~ permission {name}: scope {a.scope} -> {b.scope}")
        if a.delegation != b.delegation:
            lines.append(f"~ permission {name}: delegation {a.delegation} -> {b.delegation}")
        if set(a.bind_types) != set(b.bind_types):
            lines.append(f"~ permission {name}: bind types {_changes(a.bind_types, b.bind_types)}")
    return lines


def _roles(old: PolicyMatrix, new: PolicyMatrix) -> list[str]:
    types = {t.name for t in old.entity_types} & {t.name for t in new.entity_types}
    # where a holder may bind a permission, apart from what its bind types and delegation changes already say
    bind_types = [
        {p.name: p.bind_types if p.delegation == "token" else [] for p in matrix.permissions} for matrix in (old, new)
    ]
    versions = _Versions.of(old.roles, new.roles)
    lines = [
        f"+ role {r.name} (held on {r.entity_type}) grants {', '.join(r.permissions) or 'nothing'}"
        for r in versions.added
    ]
    lines += [f"- role {r.name} (held on {r.entity_type})" for r in versions.removed]
    for a, b in versions.kept:
        name = b.name
        if a.entity_type != b.entity_type:
            lines.append(f"~ role {name}: held on {a.entity_type} -> {b.entity_type}")
        lines += [f"+ {name} (held on {b.entity_type}) gains {p}" for p in b.permissions if p not in a.permissions]
        lines += [f"- {name} (held on {b.entity_type}) loses {p}" for p in a.permissions if p not in b.permissions]
        kept_grants = [p for p in b.permissions if p in a.permissions and a.entity_type == b.entity_type]
        for p in kept_grants:
            reach = _changes(*(_on(types, row.reaches.get(p, [])) for row in (a, b)))
            if reach:
                lines.append(f"~ {name} (held on {b.entity_type}): {p} on {reach}")
            bindable = types.intersection(*(binds_to.get(p, []) for binds_to in bind_types))  # else: a bind type change
            binds = _changes(*(_on(bindable, row.delegates.get(p, [])) for row in (a, b)))
            if binds:
                lines.append(f"~ {name} (held on {b.entity_type}): tokens carrying {p} bind to {binds}")
    return lines


def _on(types: set[str], reached: list[str]) -> list[str]:
    """The reached types that both versions declare (a new type is reported once, as a new type)."""
    return [name for name in reached if name in types]
