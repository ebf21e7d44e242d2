"""Read and check a policy directory: ``model.conf`` plus Casbin CSV policy files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class _Row:
    """One policy line: its type, fields and where it came from."""

    ptype: str
    values: tuple[str, ...]
    file: str
    line: int
    source: str

    def error(self, message: str) -> PolicyError:
        return PolicyError(self.file, self.line, message)


def load_rules(directory: Path) -> Rules:
    """Load and check every rule in ``directory``.

    Args:
        directory: A policy directory holding ``model.conf`` and ``*.csv`` files (read in name order).

    Returns:
        The rules, ready to evaluate.

    Raises:
        PolicyError: Anything missing, malformed or inconsistent, located by file and line.
    """
    model_text = _check_model(directory / MODEL_FILE)
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise PolicyError(str(directory), 0, "no *.csv policy files")
    rows: dict[str, list[_Row]] = {ptype: [] for ptype in FIELDS}
    for file in files:
        for row in _read_rows(file, f"{directory.name}/{file.name}"):
            rows[row.ptype].append(row)
    entity_types = _entity_types(rows["p5"], str(directory))
    permissions = _permissions(rows["p3"], rows["p4"], entity_types)
    roles, grant_sources = _roles(rows["p2"], rows["p"], permissions, entity_types)
    grants: dict[str, list[str]] = {}
    for role, perm in grant_sources:
        grants.setdefault(perm, []).append(role)
    return Rules(
        permissions=MappingProxyType(permissions),
        roles=MappingProxyType(roles),
        entity_types=MappingProxyType(entity_types),
        grant_sources=MappingProxyType(grant_sources),
        matcher=GrantMatcher(model_text, grants),
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), 0, f"cannot read: {exc}") from exc


def _check_model(path: Path) -> str:
    """Return the text of ``model.conf`` after checking it declares what the loader relies on."""
    text = _read_text(path)
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _DEFINITION_RE.match(line)
        if match:
            lines.setdefault(match.group(1), number)
    model = Model()
    try:
        model.load_model_from_text(text)
    except Exception as exc:  # pycasbin raises bare exceptions of many kinds on malformed text
        raise PolicyError(str(path), 0, f"not a valid Casbin model: {exc}") from exc
    if "g" in model.keys():
        raise PolicyError(str(path), lines.get("g", 0), "role definitions (g) are not supported")
    if "m" not in model.keys() or "m" not in model["m"]:
        raise PolicyError(str(path), 0, "missing [matchers] m")
    requests = model["r"]["r"].tokens if "r" in model.keys() and "r" in model["r"] else []
    if requests != [f"r_{name}" for name in REQUEST_FIELDS]:
        raise PolicyError(str(path), lines.get("r", 0), f"request must be: r = {', '.join(REQUEST_FIELDS)}")
    declared = model["p"] if "p" in model.keys() else {}
    for ptype, names in FIELDS.items():
        if ptype not in declared or declared[ptype].tokens != [f"{ptype}_{name}" for name in names]:
            raise PolicyError(str(path), lines.get(ptype, 0), f"policy type must be: {ptype} = {', '.join(names)}")
    for ptype in declared:
        if ptype not in FIELDS:
            raise PolicyError(str(path), lines.get(ptype, 0), f"policy type {ptype} is not understood by tokengate")
    return text


def _read_rows(path: Path, display: str) -> Iterator[_Row]:
    """Yield the policy lines of one CSV file; ``#`` comments and blank lines are skipped."""
    for number, raw in enumerate(_read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ptype, *values = (field.strip() for field in line.split(","))
        names = FIELDS.get(ptype)
        if names is None:
            raise PolicyError(str(path), number, f"unknown policy type {ptype!r}; expected one of {', '.join(FIELDS)}")
        if len(values) != len(names):
            hint = " (descriptions may not contain commas)" if len(values) > len(names) else ""
            raise PolicyError(
                str(path), number, f"{ptype} takes {len(names)} fields ({', '.join(names)}), got {len(values)}{hint}"
            )
        if not all(values):
            raise PolicyError(str(path), number, "empty field")
        yield _Row(ptype, tuple(values), str(path), number, f"{display}:{number}")


def _entity_types(rows: list[_Row], directory: str) -> dict[str, tuple[str, ...]]:
    parents: dict[str, list[str]] = {}
    roots: set[str] = set()
    for row in rows:
        child, parent = row.values
        if not _TYPE_RE.fullmatch(child):
            raise row.error(f"entity type {child!r} must be lower_snake_case")
        known = parents.setdefault(child, [])
        if parent in known or (parent == ROOT_PARENT and child in roots):
            raise row.error(f"duplicate entity type line for {child}")
        if parent == ROOT_PARENT:
            roots.add(child)
        else:
            known.append(parent)
        if child in roots and known:
            raise row.error(f"entity type {child} cannot be both a root ('-') and have parent types")
    if not parents:
        raise PolicyError(directory, 0, "no entity types declared (p5 lines)")
    for row in rows:
        if row.values[1] != ROOT_PARENT and row.values[1] not in parents:
            raise row.error(f"parent type {row.values[1]!r} is not declared (add a p5 line for it)")
    return {child: tuple(known) for child, known in parents.items()}


def _permissions(
    declarations: list[_Row], bindings: list[_Row], entity_types: dict[str, tuple[str, ...]]
) -> dict[str, PermissionSpec]:
    declared: dict[str, _Row] = {}
    for row in declarations:
        name, scope, delegation, _ = row.values
        if not _PERMISSION_RE.fullmatch(name):
            raise row.error(f"permission {name!r} must look like CATEGORY.ACTION")
        if name in declared:
            raise row.error(f"permission {name} already declared at {declared[name].source}")
        if scope not in SCOPES:
            raise row.error(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if delegation not in DELEGATIONS:
            raise row.error(f"delegation must be one of {', '.join(DELEGATIONS)}, not {delegation!r}")
        declared[name] = row
    bind_types: dict[str, list[str]] = {name: [] for name in declared}
    for row in bindings:
        name, entity_type = row.values
        if name not in declared:
            raise row.error(f"unknown permission {name} (declare it with a p3 line)")
        if declared[name].values[1] == "global":
            raise row.error(f"global permission {name} can never be bound to an entity")
        if entity_type not in entity_types:
            raise row.error(f"unknown entity type {entity_type!r}")
        if entity_type in bind_types[name]:
            raise row.error(f"duplicate bind type {entity_type} for {name}")
        bind_types[name].append(entity_type)
    specs = {}
    for name, row in declared.items():
        _, scope, delegation, description = row.values
        if scope == "entity" and not bind_types[name]:
            raise row.error(f"entity permission {name} has no bind type (add p4 lines)")
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


def _roles(
    declarations: list[_Row],
    grants: list[_Row],
    permissions: dict[str, PermissionSpec],
    entity_types: dict[str, tuple[str, ...]],
) -> tuple[dict[str, RoleSpec], dict[tuple[str, str], str]]:
    declared: dict[str, _Row] = {}
    for row in declarations:
        name, scope_type, _ = row.values
        if not _ROLE_RE.fullmatch(name):
            raise row.error(f"role {name!r} must look like TYPE.NAME")
        if name in declared:
            raise row.error(f"role {name} already declared at {declared[name].source}")
        if scope_type not in entity_types:
            raise row.error(f"unknown entity type {scope_type!r}")
        declared[name] = row
    sources: dict[tuple[str, str], str] = {}
    for row in grants:
        role, perm = row.values
        if role not in declared:
            raise row.error(f"unknown role {role} (declare it with a p2 line)")
        if perm not in permissions:
            raise row.error(f"unknown permission {perm} (declare it with a p3 line)")
        if permissions[perm].global_only:
            raise row.error(f"global permission {perm} is never granted by roles")
        if (role, perm) in sources:
            raise row.error(f"{role} already grants {perm} at {sources[(role, perm)]}")
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
