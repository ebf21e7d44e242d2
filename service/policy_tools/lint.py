"""``policy check``: every problem of a policy directory, not just the first.

The loader's own checks run in collecting mode (:func:`service.policy.loader.parse_directory`); on top of them
come the review findings below, which loading tolerates because no decision is wrong because of them, but which
a reviewer should not sign off.
"""

from __future__ import annotations

from pathlib import Path

from service.policy.errors import PolicyError
from service.policy.evaluator import verify
from service.policy.loader import MODEL_FILE, ROOT_PARENT, Parsed, Problems, Row, parse_directory, rules_of


def check_directory(directory: Path) -> list[PolicyError]:
    """Return every problem found in ``directory``, in file and line order.

    Args:
        directory: A policy directory.

    Returns:
        The problems; empty when the policy is fit to ship.
    """
    problems = Problems(collect=True)
    parsed = parse_directory(directory, problems)
    if not problems.found:  # every matcher compiles and answers sample questions of its kind
        try:
            verify(rules_of(parsed, directory / MODEL_FILE))
        except PolicyError as exc:
            problems.found.append(exc)
    _roles_granting_nothing(parsed, problems)
    _parent_type_cycles(parsed.rows["p5"], problems)
    _types_without_root(parsed, problems)
    return sorted(problems.found, key=lambda error: (error.file, error.line))


def _roles_granting_nothing(parsed: Parsed, problems: Problems) -> None:
    for row in parsed.rows["p2"]:
        role = parsed.roles.get(row.values[0])
        if role is not None and role.source == row.source and not role.permissions:
            problems.review(row.file, row.line, f"role {role.name} grants nothing (add g lines or remove it)")


def _parent_type_cycles(rows: list[Row], problems: Problems) -> None:
    """Report each cycle of two or more types once, at the line that closes it (a type may be its own parent)."""
    parents: dict[str, list[str]] = {}
    for row in rows:
        child, parent = row.values
        if parent not in (ROOT_PARENT, child):
            parents.setdefault(child, []).append(parent)
    seen: set[frozenset[str]] = set()
    for row in rows:
        child, parent = row.values
        path = _path(parents, parent, child) if parent not in (ROOT_PARENT, child) else None
        if path is None or frozenset(path) in seen:
            continue
        seen.add(frozenset(path))
        cycle = " -> ".join([child, *path])
        problems.review(row.file, row.line, f"parent-type cycle: {cycle} (only a type's own nesting is allowed)")


def _path(parents: dict[str, list[str]], start: str, goal: str) -> list[str] | None:
    """Return the types from ``start`` up to ``goal`` along parent links, or None if ``goal`` is not above it."""
    stack: list[list[str]] = [[start]]
    visited = {start}
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        for parent in parents.get(path[-1], []):
            if parent not in visited:
                visited.add(parent)
                stack.append([*path, parent])
    return None


def _types_without_root(parsed: Parsed, problems: Problems) -> None:
    """Report types from which no chain of parent types reaches a root: no entity of them could ever be created."""
    rooted = {name for name, parents in parsed.entity_types.items() if not parents}
    changed = True
    while changed:
        changed = False
        for name, parents in parsed.entity_types.items():
            if name not in rooted and rooted.intersection(parents):
                rooted.add(name)
                changed = True
    reported: set[str] = set()
    for row in parsed.rows["p5"]:
        name = row.values[0]
        if name in parsed.entity_types and name not in rooted and name not in reported:
            reported.add(name)
            message = f"entity type {name} can never be created: no chain of parent types reaches a root type"
            problems.review(row.file, row.line, message)
