"""Read and check a policy directory: ``model.conf`` plus Casbin CSV policy files.

Every rule is checked in one place. Loading stops at the first problem (:func:`load_rules`); ``tokengate policy
check`` runs the same checks in collecting mode (:func:`parse_directory` with ``Problems(collect=True)``), which
skips each offending line to go on and report the rest, and also reports the *review* findings that loading
tolerates because they cannot make a decision wrong (see ``service.policy_tools.lint``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from casbin.model import Model

from service.policy.catalog import PermissionSpec, RoleSpec, Rules
from service.policy.errors import PolicyError
from service.policy.evaluator import verify

MODEL_FILE = "model.conf"
ROOT_PARENT = "-"
# The requests the engine asks (model.conf must declare exactly these): check, delegate, bind, target.
REQUESTS: dict[str, tuple[str, ...]] = {
    "r": ("sub", "perm", "obj", "token", "now"),
    "r2": ("sub", "perm", "obj", "now"),
    "r3": ("perm", "type"),
    "r4": ("sub", "perm", "type", "now"),
}
ASSIGNMENT_FIELDS = ("user", "role", "entity", "expires", "id")  # p: role assignments, pushed in from the database
# Role definitions the engine fills: g from roles.csv, g2 and g4 from the entity tree, g3 from permissions.csv.
ROLE_DEFINITIONS = ("g", "g2", "g3", "g4")
MATCHERS = ("m", "m2", "m3", "m4")
EFFECT = "some(where (p.eft == allow))"  # the only effect: an allow is a line the matcher accepts
# Lines of the policy files, per type; model.conf must declare exactly these fields.
FIELDS: dict[str, tuple[str, ...]] = {
    "g": ("role", "perm"),
    "g3": ("perm", "class"),
    "p2": ("role", "scope_type", "description"),
    "p3": ("perm", "scope", "delegation", "description"),
    "p4": ("perm", "bind_type"),
    "p5": ("type", "parent"),
}
SCOPES = ("entity", "global")
DELEGATIONS = ("token", "staff", "never")
# Permission classes the p3 fields set (and the two wider classes they fall into): no g3 line may name them.
FIELD_CLASSES = (*SCOPES, *DELEGATIONS, "permission", "delegable")
_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*")
_PERMISSION_SHAPE = (re.compile(r"[A-Z][A-Z0-9_]*\.[A-Z][A-Z0-9_]*"), "CATEGORY.ACTION")
_ROLE_SHAPE = (re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Za-z0-9_-]+)+"), "TYPE.NAME")
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
        matchers: Matcher name -> its lines in ``model.conf`` as ``(line number, text)``.
    """

    model_text: str | None = None
    matchers: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
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
        PolicyError: Anything missing, malformed or inconsistent, or a matcher that fails on a sample question,
            located by file and line.
    """
    parsed = parse_directory(directory, Problems())
    assert parsed.model_text is not None  # Problems() raised otherwise
    rules = rules_of(parsed, directory / MODEL_FILE)
    verify(rules)
    return rules


def rules_of(parsed: Parsed, model_path: Path) -> Rules:
    """The rules of a completely parsed directory."""
    assert parsed.model_text is not None
    return Rules(
        permissions=MappingProxyType(parsed.permissions),
        roles=MappingProxyType(parsed.roles),
        entity_types=MappingProxyType(parsed.entity_types),
        grant_sources=MappingProxyType(parsed.grant_sources),
        model_text=parsed.model_text,
        model_file=str(model_path),
        matchers=MappingProxyType(parsed.matchers),
        declarations=MappingProxyType({ptype: [row.values for row in rows] for ptype, rows in parsed.rows.items()}),
    )


def parse_directory(directory: Path, problems: Problems) -> Parsed:
    """Read and check ``directory``, reporting each problem to ``problems``.

    Args:
        directory: A policy directory.
        problems: Raises the first problem, or collects them all and lets parsing skip the offending lines.

    Returns:
        What could be read; complete only if no problem was reported.
    """
    parsed = Parsed()
    parsed.model_text, parsed.matchers = _check_model(directory / MODEL_FILE, problems)
    files = sorted(directory.glob("*.csv"))
    if not files:
        problems.add(str(directory), 0, "no *.csv policy files")
    for file in files:
        for row in _read_rows(file, f"{directory.name}/{file.name}", problems):
            parsed.rows[row.ptype].append(row)
    parsed.entity_types = _entity_types(parsed.rows["p5"], str(directory), problems)
    parsed.permissions = _permissions(parsed.rows["p3"], parsed.rows["p4"], parsed.entity_types, problems)
    _check_classes(parsed.rows["g3"], parsed.permissions, problems)
    parsed.roles, parsed.grant_sources = _roles(
        parsed.rows["p2"], parsed.rows["g"], parsed.permissions, parsed.entity_types, problems
    )
    return parsed


def _read_text(path: Path, problems: Problems) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(str(path), 0, f"cannot read: {exc}")
        return None


def matcher_lines(text: str) -> dict[str, list[tuple[int, str]]]:
    """Every matcher of ``[matchers]`` as its physical lines ``(number, text)``, continuation marks removed."""
    found: dict[str, list[tuple[int, str]]] = {}
    section, current = "", None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section, current = line[1:-1], None
            continue
        if section != "matchers" or not line or line[0] in "#;":
            current = None
            continue
        if current is None:
            match = _DEFINITION_RE.match(line)
            if match is None:
                continue
            current = found.setdefault(match.group(1), [])
        current.append((number, line.removesuffix("\\").strip()))
        if not line.endswith("\\"):
            current = None
    return found


def _check_model(path: Path, problems: Problems) -> tuple[str | None, dict[str, list[tuple[int, str]]]]:
    """Return the text of ``model.conf`` and its matchers after checking it declares what the engine asks."""
    text = _read_text(path, problems)
    if text is None:
        return None, {}
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
        return None, {}
    before = len(problems.found)
    matchers = matcher_lines(text)
    for name, definition in matchers.items():
        for number, line in definition:
            if "#" in line:  # Casbin cuts a matcher at "#": the rest of the expression would silently vanish
                problems.add(str(path), number, f"matcher {name} contains '#', which Casbin reads as a comment")
    declared = {sec: model[sec] if sec in model.keys() else {} for sec in ("r", "p", "g", "m")}
    for rtype, names in REQUESTS.items():
        if rtype not in declared["r"] or declared["r"][rtype].tokens != [f"{rtype}_{name}" for name in names]:
            problems.add(str(path), lines.get(rtype, 0), f"request must be: {rtype} = {', '.join(names)}")
    for ptype, names in {"p": ASSIGNMENT_FIELDS, **{t: n for t, n in FIELDS.items() if t[0] == "p"}}.items():
        if ptype not in declared["p"] or declared["p"][ptype].tokens != [f"{ptype}_{name}" for name in names]:
            problems.add(str(path), lines.get(ptype, 0), f"policy type must be: {ptype} = {', '.join(names)}")
    for gtype in ROLE_DEFINITIONS:
        if gtype not in declared["g"] or declared["g"][gtype].value.replace(" ", "") != "_,_":
            problems.add(str(path), lines.get(gtype, 0), f"role definition must be: {gtype} = _, _")
    effects = (
        [a.value.replace(" ", "").replace("p_eft", "p.eft") for a in model["e"].values()] if "e" in model.keys() else []
    )
    if effects != [EFFECT.replace(" ", "")]:
        problems.add(str(path), lines.get("e", 0), f"policy effect must be: e = {EFFECT} (p lines carry no eft)")
    for mtype in MATCHERS:
        if mtype not in declared["m"]:
            problems.add(str(path), lines.get("m", 0), f"missing matcher {mtype}")
    for sec, known in (("r", REQUESTS), ("p", ("p", *FIELDS)), ("g", ROLE_DEFINITIONS), ("m", MATCHERS)):
        for key in declared[sec]:
            if key not in known:
                problems.add(str(path), lines.get(key, 0), f"{key} is not asked or filled by tokengate")
    return (text, matchers) if len(problems.found) == before else (None, {})


def _read_rows(path: Path, display: str, problems: Problems) -> Iterator[Row]:
    """Yield the well-formed policy lines of one CSV file; ``#`` comments and blank lines are skipped."""
    for number, raw in enumerate((_read_text(path, problems) or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ptype, *values = (field.strip() for field in line.split(","))
        names = FIELDS.get(ptype)
        if ptype == "p":
            message = "p lines are role assignments, taken from the database: grant a permission with g, ROLE, PERM"
            problems.add(str(path), number, message)
        elif names is None:
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


def _declarations(
    declarations: list[Row],
    what: str,
    shape: tuple[re.Pattern[str], str],
    fault: Callable[[Row], str | None],
    problems: Problems,
) -> dict[str, Row]:
    """Declaration rows by name, each name's first; a malformed name, a repeat or a ``fault`` is a problem instead.

    ``shape`` is the name's pattern and how to say it should look.
    """
    pattern, looks_like = shape
    declared: dict[str, Row] = {}
    for row in declarations:
        name = row.values[0]
        if not pattern.fullmatch(name):
            problems.add(row.file, row.line, f"{what} {name!r} must look like {looks_like}")
        elif name in declared:
            problems.add(row.file, row.line, _same_or_contradicts(row, declared[name], f"{what} {name}"))
        elif (problem := fault(row)) is not None:
            problems.add(row.file, row.line, problem)
        else:
            declared[name] = row
    return declared


def _permission_fault(row: Row) -> str | None:
    _, scope, delegation, _ = row.values
    if scope not in SCOPES:
        return f"scope must be one of {', '.join(SCOPES)}, not {scope!r}"
    if delegation not in DELEGATIONS:
        return f"delegation must be one of {', '.join(DELEGATIONS)}, not {delegation!r}"
    return None


def _permissions(
    declarations: list[Row], bindings: list[Row], entity_types: dict[str, tuple[str, ...]], problems: Problems
) -> dict[str, PermissionSpec]:
    declared = _declarations(declarations, "permission", _PERMISSION_SHAPE, _permission_fault, problems)
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


def _check_classes(rows: list[Row], permissions: dict[str, PermissionSpec], problems: Problems) -> None:
    """``g3, PERMISSION, CLASS``: an author's permission class, for matchers to ask with ``g3(r.perm, "CLASS")``."""
    seen: set[tuple[str, ...]] = set()
    for row in rows:
        name, klass = row.values
        if name not in permissions:
            problems.add(row.file, row.line, f"unknown permission {name} (declare it with a p3 line)")
        elif not _TYPE_RE.fullmatch(klass):
            problems.add(row.file, row.line, f"permission class {klass!r} must be lower_snake_case")
        elif klass in FIELD_CLASSES:
            problems.add(row.file, row.line, f"class {klass} is set by the p3 fields, not by g3 lines")
        elif row.values in seen:
            problems.add(row.file, row.line, f"duplicate class {klass} for {name}")
        seen.add(row.values)


def _roles(
    declarations: list[Row],
    grants: list[Row],
    permissions: dict[str, PermissionSpec],
    entity_types: dict[str, tuple[str, ...]],
    problems: Problems,
) -> tuple[dict[str, RoleSpec], dict[tuple[str, str], str]]:
    def unknown_type(row: Row) -> str | None:
        return None if row.values[1] in entity_types else f"unknown entity type {row.values[1]!r}"

    declared = _declarations(declarations, "role", _ROLE_SHAPE, unknown_type, problems)
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
