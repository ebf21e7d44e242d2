"""Read and check a policy directory: ``model.conf`` plus Casbin CSV policy files.

Every rule is checked in one place. Loading stops at the first problem (:func:`load_rules`); ``tokengate policy
check`` runs the same checks in collecting mode (:func:`parse_directory` with ``Problems(collect=True)``), which
skips each offending line to go on and report the rest, and also reports the *review* findings that loading
tolerates because they cannot make a decision wrong (see ``service.policy.lint``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from casbin.model import Model

from service.policy.catalog import PermissionSpec, RoleSpec, Rules
from service.policy.errors import PolicyError
from service.policy.grants import GrantMatcher

MODEL_FILE = "model.conf"
ROOT_PARENT = "-"
REQUEST_FIELDS = ("roles", "perm")
# Field names the loader relies on, per policy type; model.conf must declare exactly these.
FIELDS: dict[str, tuple[str, ...]] = {
    "p": ("role", "perm"),
    "p2": ("role", "scope_type", "description"),
    "p3": ("perm", "scope", "delegation", "description"),
    "p4": ("perm", "bind_type"),
    "p5": ("type", "parent"),
}
SCOPES = ("entity", "global")
DELEGATIONS = ("token", "staff", "never")
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*")
_PERMISSION_RE = re.compile(r"[A-Z][A-Z0-9_]*\.[A-Z][A-Z0-9_]*")
_ROLE_RE = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Za-z0-9_-]+)+")
_DEFINITION_RE = re.compile(r"\s*(\w+)\s*=")


class Problems:
    """Where the checks report problems: raise the first one (loading) or collect them all (linting)."""

    def __init__(self, collect: bool = False) -> None:
        """Create an empty report.

        Args:
            collect: Keep going and record every problem instead of raising the first.
        """
        self.collect = collect
        self.found: list[PolicyError] = []

    def add(self, file: str, line: int, message: str) -> None:
        """Report a problem at ``file:line``.

        Raises:
            PolicyError: Unless collecting.
        """
        error = PolicyError(file, line, message)
        if not self.collect:
            raise error
        self.found.append(error)

    def review(self, file: str, line: int, message: str) -> None:
        """Report something loading accepts but a reviewer should fix: recorded only when collecting."""
        if self.collect:
            self.found.append(PolicyError(file, line, message))


@dataclass(frozen=True, slots=True)
class Row:
    """One policy line: its type, fields and where it came from.

    Attributes:
        ptype: Policy type (``p``, ``p2`` ...).
        values: The fields after the type, stripped.
        file: Path of the file, as it was opened.
        line: 1-based line number.
        source: ``DIRECTORY/FILE:LINE``, the short form shown in explanations.
    """

    ptype: str
    values: tuple[str, ...]
    file: str
    line: int
    source: str


@dataclass(slots=True)
class Parsed:
    """Everything read from a policy directory, including the lines each fact came from.

    Attributes:
        model_text: Contents of ``model.conf``, or None if it is unusable.
        rows: Well-formed lines per policy type, in file order.
        entity_types: Entity type -> allowed parent types.
        permissions: Permission name -> spec.
        roles: Role name -> spec.
        grant_sources: (role, permission) -> ``file:line`` of the grant rule.
    """

    model_text: str | None = None
    rows: dict[str, list[Row]] = field(default_factory=lambda: {ptype: [] for ptype in FIELDS})
    entity_types: dict[str, tuple[str, ...]] = field(default_factory=dict)
    permissions: dict[str, PermissionSpec] = field(default_factory=dict)
    roles: dict[str, RoleSpec] = field(default_factory=dict)
    grant_sources: dict[tuple[str, str], str] = field(default_factory=dict)


def load_rules(directory: Path) -> Rules:
    """Load and check every rule in ``directory``.

    Args:
        directory: A policy directory holding ``model.conf`` and ``*.csv`` files (read in name order).

    Returns:
        The rules, ready to evaluate.

    Raises:
        PolicyError: Anything missing, malformed or inconsistent, located by file and line.
    """
    parsed = parse_directory(directory, Problems())
    assert parsed.model_text is not None  # Problems() raised otherwise
    grants: dict[str, list[str]] = {}
    for role, perm in parsed.grant_sources:
        grants.setdefault(perm, []).append(role)
    return Rules(
        permissions=MappingProxyType(parsed.permissions),
        roles=MappingProxyType(parsed.roles),
        entity_types=MappingProxyType(parsed.entity_types),
        grant_sources=MappingProxyType(parsed.grant_sources),
        matcher=GrantMatcher(parsed.model_text, grants),
    )


def parse_directory(directory: Path, problems: Problems) -> Parsed:
    """Read and check ``directory``, reporting each problem to ``problems``.

    Args:
        directory: A policy directory.
        problems: Raises the first problem, or collects them all and lets parsing skip the offending lines.

    Returns:
        What could be read; complete only if no problem was reported.
    """
    parsed = Parsed(model_text=_check_model(directory / MODEL_FILE, problems))
    files = sorted(directory.glob("*.csv"))
    if not files:
        problems.add(str(directory), 0, "no *.csv policy files")
    for file in files:
        for row in _read_rows(file, f"{directory.name}/{file.name}", problems):
            parsed.rows[row.ptype].append(row)
    parsed.entity_types = _entity_types(parsed.rows["p5"], str(directory), problems)
    parsed.permissions = _permissions(parsed.rows["p3"], parsed.rows["p4"], parsed.entity_types, problems)
    parsed.roles, parsed.grant_sources = _roles(
        parsed.rows["p2"], parsed.rows["p"], parsed.permissions, parsed.entity_types, problems
    )
    return parsed


def _read_text(path: Path, problems: Problems) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(str(path), 0, f"cannot read: {exc}")
        return None


def _check_model(path: Path, problems: Problems) -> str | None:
    """Return the text of ``model.conf`` after checking it declares what the loader relies on."""
    text = _read_text(path, problems)
    if text is None:
        return None
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _DEFINITION_RE.match(line)
        if match:
            lines.setdefault(match.group(1), number)
    model = Model()
    try:
        model.load_model_from_text(text)
    except Exception as exc:  # pycasbin raises bare exceptions of many kinds on malformed text
        problems.add(str(path), 0, f"not a valid Casbin model: {exc}")
        return None
    before = len(problems.found)
    if "g" in model.keys():
        problems.add(str(path), lines.get("g", 0), "role definitions (g) are not supported")
    if "m" not in model.keys() or "m" not in model["m"]:
        problems.add(str(path), 0, "missing [matchers] m")
    requests = model["r"]["r"].tokens if "r" in model.keys() and "r" in model["r"] else []
    if requests != [f"r_{name}" for name in REQUEST_FIELDS]:
        problems.add(str(path), lines.get("r", 0), f"request must be: r = {', '.join(REQUEST_FIELDS)}")
    declared = model["p"] if "p" in model.keys() else {}
    for ptype, names in FIELDS.items():
        if ptype not in declared or declared[ptype].tokens != [f"{ptype}_{name}" for name in names]:
            problems.add(str(path), lines.get(ptype, 0), f"policy type must be: {ptype} = {', '.join(names)}")
    for ptype in declared:
        if ptype not in FIELDS:
            problems.add(str(path), lines.get(ptype, 0), f"policy type {ptype} is not understood by tokengate")
    return text if len(problems.found) == before else None


def _read_rows(path: Path, display: str, problems: Problems) -> Iterator[Row]:
    """Yield the well-formed policy lines of one CSV file; ``#`` comments and blank lines are skipped."""
    for number, raw in enumerate((_read_text(path, problems) or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ptype, *values = (field.strip() for field in line.split(","))
        names = FIELDS.get(ptype)
        if names is None:
            problems.add(str(path), number, f"unknown policy type {ptype!r}; expected one of {', '.join(FIELDS)}")
        elif ptype == "p3" and (len(values) == len(names) - 1 or values[3:4] == [""]):
            problems.add(str(path), number, f"permission {values[0]} has no description (empty field)")
        elif len(values) != len(names):
            hint = " (descriptions may not contain commas)" if len(values) > len(names) else ""
            message = f"{ptype} takes {len(names)} fields ({', '.join(names)}), got {len(values)}{hint}"
            problems.add(str(path), number, message)
        elif not all(values):
            problems.add(str(path), number, f"empty field {names[values.index('')]}")
        else:
            yield Row(ptype, tuple(values), str(path), number, f"{display}:{number}")


def _same_or_contradicts(row: Row, first: Row, what: str) -> str:
    """Message for a second declaration of ``what``: a plain duplicate, or one that says something else."""
    verb = "duplicates" if row.values == first.values else "contradicts"
    return f"{what} already declared at {first.source} (this line {verb} it)"


def _entity_types(rows: list[Row], directory: str, problems: Problems) -> dict[str, tuple[str, ...]]:
    parents: dict[str, list[str]] = {}
    roots: set[str] = set()
    for row in rows:
        child, parent = row.values
        if not _TYPE_RE.fullmatch(child):
            problems.add(row.file, row.line, f"entity type {child!r} must be lower_snake_case")
            continue
        known = parents.setdefault(child, [])
        if parent in known or (parent == ROOT_PARENT and child in roots):
            problems.add(row.file, row.line, f"duplicate entity type line for {child}")
        elif (parent == ROOT_PARENT and known) or (parent != ROOT_PARENT and child in roots):
            problems.add(row.file, row.line, f"entity type {child} cannot be both a root ('-') and have parent types")
        elif parent == ROOT_PARENT:
            roots.add(child)
        else:
            known.append(parent)
    if not parents:
        problems.add(directory, 0, "no entity types declared (p5 lines)")
    for row in rows:
        if row.values[1] != ROOT_PARENT and row.values[1] not in parents:
            problems.add(row.file, row.line, f"parent type {row.values[1]!r} is not declared (add a p5 line for it)")
    return {child: tuple(p for p in known if p in parents) for child, known in parents.items()}


def _permission_declarations(declarations: list[Row], problems: Problems) -> dict[str, Row]:
    declared: dict[str, Row] = {}
    for row in declarations:
        name, scope, delegation, _ = row.values
        if not _PERMISSION_RE.fullmatch(name):
            problems.add(row.file, row.line, f"permission {name!r} must look like CATEGORY.ACTION")
        elif name in declared:
            problems.add(row.file, row.line, _same_or_contradicts(row, declared[name], f"permission {name}"))
        elif scope not in SCOPES:
            problems.add(row.file, row.line, f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        elif delegation not in DELEGATIONS:
            problems.add(row.file, row.line, f"delegation must be one of {', '.join(DELEGATIONS)}, not {delegation!r}")
        else:
            declared[name] = row
    return declared


def _permissions(
    declarations: list[Row], bindings: list[Row], entity_types: dict[str, tuple[str, ...]], problems: Problems
) -> dict[str, PermissionSpec]:
    declared = _permission_declarations(declarations, problems)
    bind_types: dict[str, list[str]] = {name: [] for name in declared}
    for row in bindings:
        name, entity_type = row.values
        if name not in declared:
            problems.add(row.file, row.line, f"unknown permission {name} (declare it with a p3 line)")
        elif declared[name].values[1] == "global":
            problems.add(row.file, row.line, f"global permission {name} can never be bound to an entity")
        elif entity_type not in entity_types:
            problems.add(row.file, row.line, f"unknown entity type {entity_type!r}: a bind type must be declared by p5")
        elif entity_type in bind_types[name]:
            problems.add(row.file, row.line, f"duplicate bind type {entity_type} for {name}")
        else:
            if declared[name].values[2] == "never":
                message = f"{name} is never delegated to a token: a p4 line offers it to tokens"
                problems.review(row.file, row.line, message)
            bind_types[name].append(entity_type)
    specs = {}
    for name, row in declared.items():
        _, scope, delegation, description = row.values
        if scope == "entity" and delegation != "never" and not bind_types[name]:
            problems.add(row.file, row.line, f"entity permission {name} has no bind type (add p4 lines)")
        specs[name] = PermissionSpec(
            name=name,
            description=description,
            delegable=delegation != "never",
            bind_types=tuple(bind_types[name]),
            global_only=scope == "global",
            delegation=delegation,
            source=row.source,
        )
    return specs


def _role_declarations(
    declarations: list[Row], entity_types: dict[str, tuple[str, ...]], problems: Problems
) -> dict[str, Row]:
    declared: dict[str, Row] = {}
    for row in declarations:
        name, scope_type, _ = row.values
        if not _ROLE_RE.fullmatch(name):
            problems.add(row.file, row.line, f"role {name!r} must look like TYPE.NAME")
        elif name in declared:
            problems.add(row.file, row.line, _same_or_contradicts(row, declared[name], f"role {name}"))
        elif scope_type not in entity_types:
            problems.add(row.file, row.line, f"unknown entity type {scope_type!r}")
        else:
            declared[name] = row
    return declared


def _roles(
    declarations: list[Row],
    grants: list[Row],
    permissions: dict[str, PermissionSpec],
    entity_types: dict[str, tuple[str, ...]],
    problems: Problems,
) -> tuple[dict[str, RoleSpec], dict[tuple[str, str], str]]:
    declared = _role_declarations(declarations, entity_types, problems)
    sources: dict[tuple[str, str], str] = {}
    for row in grants:
        role, perm = row.values
        if role not in declared:
            problems.add(row.file, row.line, f"unknown role {role} (declare it with a p2 line)")
        elif perm not in permissions:
            problems.add(row.file, row.line, f"unknown permission {perm} (declare it with a p3 line)")
        elif permissions[perm].global_only:
            problems.add(row.file, row.line, f"global permission {perm} is never granted by roles")
        elif (role, perm) in sources:
            problems.add(row.file, row.line, f"{role} already grants {perm} at {sources[(role, perm)]}")
        else:
            sources[(role, perm)] = row.source
    specs = {
        name: RoleSpec(
            name=name,
            scope_type=row.values[1],
            description=row.values[2],
            permissions=tuple(perm for role, perm in sources if role == name),
            source=row.source,
        )
        for name, row in declared.items()
    }
    return specs, sources
