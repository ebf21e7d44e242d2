"""``policy diff``: the effective change between two versions of the rules, for a reviewer to approve.

Only what changes decisions or delegation is reported: entity types and parent links, permissions (scope,
delegation, bind types), roles (their entity type), the grants of each role, how far down each grant reaches and
where a holder may bind it. The matrices compared are Casbin's answers, so two directories that differ only in
``model.conf`` show their effective difference. Comments, descriptions and line order are not reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from service.policy_tools.matrix import PermissionRow, PolicyMatrix, RoleRow


def diff_matrices(old: PolicyMatrix, new: PolicyMatrix) -> list[str]:
    """Return one line per effective change from ``old`` to ``new``; empty when they decide alike.

    Lines start with ``+`` (added or gained), ``-`` (removed or lost) or ``~`` (changed).
    """
    return [*_entity_types(old, new), *_permissions(old, new), *_roles(old, new)]


def _changes(old: Iterable[str], new: Iterable[str]) -> str:
    """``+a -b`` for the items added to and removed from a list."""
    before, after = list(old), list(new)
    return " ".join([*(f"+{x}" for x in after if x not in before), *(f"-{x}" for x in before if x not in after)])


def _added_removed(old: Mapping[str, object], new: Mapping[str, object]) -> tuple[list[str], list[str], list[str]]:
    """Names only in ``new``, only in ``old``, and in both (each in its own file order)."""
    return [n for n in new if n not in old], [n for n in old if n not in new], [n for n in new if n in old]


def _entity_types(old: PolicyMatrix, new: PolicyMatrix) -> list[str]:
    before = {t.name: t.parents for t in old.entity_types}
    after = {t.name: t.parents for t in new.entity_types}
    added, removed, kept = _added_removed(before, after)
    lines = [f"+ entity type {n} ({'root' if not after[n] else 'under ' + ', '.join(after[n])})" for n in added]
    lines += [f"- entity type {n}" for n in removed]
    changed = [n for n in kept if set(before[n]) != set(after[n])]
    lines += [f"~ entity type {n}: parents {_changes(before[n], after[n])}" for n in changed]
    return lines


def _permissions(old: PolicyMatrix, new: PolicyMatrix) -> list[str]:
    before: dict[str, PermissionRow] = {p.name: p for p in old.permissions}
    after: dict[str, PermissionRow] = {p.name: p for p in new.permissions}
    added, removed, kept = _added_removed(before, after)
    lines = []
    for name in added:
        p = after[name]
        binds = f", binds to {', '.join(p.bind_types)}" if p.bind_types else ""
        lines.append(f"+ permission {name} ({p.scope}, delegation {p.delegation}{binds})")
    lines += [f"- permission {name}" for name in removed]
    for name in kept:
        a, b = before[name], after[name]
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
    before: dict[str, RoleRow] = {r.name: r for r in old.roles}
    after: dict[str, RoleRow] = {r.name: r for r in new.roles}
    added, removed, kept = _added_removed(before, after)
    lines = []
    for name in added:
        r = after[name]
        lines.append(f"+ role {name} (held on {r.entity_type}) grants {', '.join(r.permissions) or 'nothing'}")
    lines += [f"- role {name} (held on {before[name].entity_type})" for name in removed]
    for name in kept:
        a, b = before[name], after[name]
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
