"""The shipped policy files, their loader's error reporting, reload, and compatibility with stock Casbin."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import casbin
import pytest

from service.policy import AssignmentFact, EntityFact, PolicyEngine, PolicyError, Subject


@pytest.fixture(name="engine")
def fx_engine(policy_dir: Path) -> PolicyEngine:
    return PolicyEngine.from_directory(policy_dir)


def test_default_catalogue(engine: PolicyEngine) -> None:
    roles = {name: spec.scope_type for name, spec in engine.roles.items()}
    assert roles == {
        "CUSTOMER.OWNER": "customer",
        "CUSTOMER.MANAGER": "customer",
        "CUSTOMER.SUPPORT": "customer",
        "PROJECT.MANAGER": "project",
        "PROJECT.ADMIN": "project",
        "PROJECT.MEMBER": "project",
        "OFFERING.MANAGER": "offering",
    }
    entity_permissions = [spec for spec in engine.permissions.values() if not spec.global_only]
    assert len(entity_permissions) >= 20
    for spec in engine.permissions.values():
        assert len(spec.description) > 15
        assert spec.source.startswith("policies/permissions.csv:")
    for required in ("CUSTOMER.UPDATE", "PROJECT.LIST", "PROJECT.CREATE", "PROJECT.DELETE", "RESOURCE.TERMINATE"):
        assert required in engine.permissions
    assert engine.permissions["PROJECT.UPDATE"].bind_types == ("customer", "project")
    assert not engine.permissions["SERVICE_ACCOUNT.MANAGE"].delegable
    for name in ("STAFF.ACCESS", "SUPPORT.ACCESS"):
        spec = engine.permissions[name]
        assert (spec.global_only, spec.bind_types, spec.delegable, spec.delegation) == (True, (), True, "staff")
        assert all(name not in role.permissions for role in engine.roles.values())
    assert dict(engine.entity_types) == {
        "customer": (),
        "project": ("customer",),
        "resource": ("project",),
        "offering": ("customer",),
    }


def test_catalogue_is_read_only(engine: PolicyEngine) -> None:
    with pytest.raises(TypeError):
        engine.permissions["X.Y"] = engine.permissions["PROJECT.LIST"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("child", "parent", "expected"),
    [
        ("customer", None, True),
        ("project", "customer", True),
        ("resource", "project", True),
        ("offering", "customer", True),
        ("project", None, False),
        ("resource", "customer", False),
        ("customer", "customer", False),
        ("offering", "project", False),
        ("planet", None, False),
        ("project", "planet", False),
    ],
)
def test_may_parent(engine: PolicyEngine, child: str, parent: str | None, expected: bool) -> None:
    assert engine.may_parent(child, parent) is expected


def test_deep_policy_lets_a_type_parent_itself(deep_policy_dir: Path) -> None:
    engine = PolicyEngine.from_directory(deep_policy_dir)
    assert engine.may_parent("folder", "folder")
    assert engine.may_parent("folder", "org")
    assert not engine.may_parent("folder", None)


def test_files_load_in_stock_casbin(engine: PolicyEngine, policy_dir: Path, tmp_path: Path) -> None:
    """A reviewer can feed model.conf and the CSV files to stock Casbin, add the facts, and get the same answers."""
    combined = tmp_path / "all.csv"
    combined.write_text("\n".join(p.read_text() for p in sorted(policy_dir.glob("*.csv"))))
    enforcer = casbin.Enforcer(str(policy_dir / "model.conf"), str(combined))
    assert len(enforcer.get_named_policy("p3")) == len(engine.permissions)
    assert [row[3] for row in enforcer.get_named_policy("p3")] == [s.description for s in engine.permissions.values()]
    assert len(enforcer.get_named_policy("p2")) == len(engine.roles)
    for perm, scope, delegation, _ in enforcer.get_named_policy("p3"):  # g3: one class link per p3 field
        enforcer.add_named_grouping_policy("g3", perm, scope)
        enforcer.add_named_grouping_policy("g3", perm, delegation)
    for child, parent in (("entity", "permission"), ("global", "permission"), ("token", "delegable")):
        enforcer.add_named_grouping_policy("g3", child, parent)
    enforcer.add_named_grouping_policy("g3", "staff", "delegable")
    entities = [EntityFact("acme", "customer", None), EntityFact("apollo", "project", "acme")]
    entities.append(EntityFact("vm1", "resource", "apollo"))
    for entity in entities:
        enforcer.add_named_grouping_policy("g4", entity.uuid, entity.type)
        if entity.parent:
            enforcer.add_named_grouping_policy("g2", entity.uuid, entity.parent)
    enforcer.add_function("entity_exists", lambda uuid: uuid in {"acme", "apollo", "vm1"})
    assignments = [AssignmentFact("a1", 1, "PROJECT.MEMBER", "apollo", None)]
    assignments.append(AssignmentFact("a2", 2, "CUSTOMER.OWNER", "acme", None))
    engine.replace_facts(entities, assignments)
    for user_id in (1, 2):
        subject = Subject(user_id, False)
        lines = [[a.user_id, a.role, a.entity, math.inf, a.uuid] for a in assignments if a.user_id == user_id]
        enforcer.get_model()["p"]["p"].policy = lines  # the asker's assignments, as the engine shows them
        for perm in engine.permissions:
            for target in ("acme", "apollo", "vm1", ""):
                expected = engine.decide(subject, perm, target or None).allowed
                assert enforcer.enforce(subject, perm, target, None, 0.0) is expected, (user_id, perm, target)


def test_policy_error_format() -> None:
    error = PolicyError("policies/roles.csv", 7, "unknown role X")
    assert (error.file, error.line, error.message) == ("policies/roles.csv", 7, "unknown role X")
    assert str(error) == "policies/roles.csv:7: unknown role X"


def _copy(policy_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(policy_dir, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def _append(directory: Path, name: str, line: str) -> int:
    """Append a line to a policy file; return its line number."""
    path = directory / name
    text = path.read_text().rstrip("\n") + "\n"
    path.write_text(text + line + "\n")
    return text.count("\n") + 1


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        ("roles.csv", "g, CUSTOMER.OWNER, NOPE.NOTHING", "unknown permission NOPE.NOTHING"),
        ("roles.csv", "g, NOBODY.ROLE, PROJECT.LIST", "unknown role NOBODY.ROLE"),
        ("roles.csv", "g, CUSTOMER.OWNER, STAFF.ACCESS", "never granted by roles"),
        ("roles.csv", "g, CUSTOMER.OWNER, PROJECT.LIST", "already grants PROJECT.LIST at policies/roles.csv:"),
        ("roles.csv", "p2, PLANET.OWNER, planet, Owns a planet", "unknown entity type 'planet'"),
        ("roles.csv", "p2, CUSTOMER.OWNER, customer, Again", "role CUSTOMER.OWNER already declared"),
        ("roles.csv", "p2, owner, customer, Lowercase", "must look like TYPE.NAME"),
        ("permissions.csv", "p3, PROJECT.ARCHIVE, entity, token, Archive, then forget", "may not contain commas"),
        ("permissions.csv", "p3, PROJECT.LIST, entity, token, Again", "permission PROJECT.LIST already declared"),
        ("permissions.csv", "p3, project.archive, entity, token, Archive", "CATEGORY.ACTION"),
        ("permissions.csv", "p3, PROJECT.ARCHIVE, entity, maybe, Archive", "delegation must be one of"),
        ("permissions.csv", "p3, PROJECT.ARCHIVE, local, token, Archive", "scope must be one of"),
        ("permissions.csv", "p3, PROJECT.ARCHIVE, entity, token, Archive", "has no bind type"),
        ("permissions.csv", "p4, STAFF.ACCESS, customer", "can never be bound"),
        ("permissions.csv", "p4, PROJECT.LIST, planet", "unknown entity type 'planet'"),
        ("permissions.csv", "p4, PROJECT.LIST, customer", "duplicate bind type"),
        ("permissions.csv", "p4, PROJECT.ARCHIVE, project", "unknown permission PROJECT.ARCHIVE"),
        ("entities.csv", "p5, folder, planet", "parent type 'planet' is not declared"),
        ("entities.csv", "p5, customer, project", "cannot be both a root"),
        ("entities.csv", "p5, project, customer", "duplicate entity type line"),
        ("entities.csv", "p5, Folder, customer", "lower_snake_case"),
        ("entities.csv", "g9, folder, customer", "unknown policy type 'g9'"),
        ("roles.csv", "p, alice, CUSTOMER.OWNER, acme", "p lines are role assignments, taken from the database"),
        ("entities.csv", "p5, folder", "p5 takes 2 fields (type, parent), got 1"),
        ("entities.csv", "p5, folder, ", "empty field"),
    ],
)
def test_broken_rule_is_located(policy_dir: Path, tmp_path: Path, file: str, line: str, message: str) -> None:
    directory = _copy(policy_dir, tmp_path)
    number = _append(directory, file, line)
    with pytest.raises(PolicyError) as caught:
        PolicyEngine.from_directory(directory)
    error = caught.value
    assert message in error.message
    assert (error.file, error.line) == (str(directory / file), number)
    assert str(error).startswith(f"{directory / file}:{number}: ")


def test_bad_permission_declaration_is_located_at_its_line(policy_dir: Path, tmp_path: Path) -> None:
    directory = _copy(policy_dir, tmp_path)
    number = _append(directory, "permissions.csv", "p3, PROJECT.ARCHIVE, entity, token, Archive a project")
    _append(directory, "permissions.csv", "# comment after it")
    with pytest.raises(PolicyError, match=rf"permissions.csv:{number}: entity permission PROJECT.ARCHIVE"):
        PolicyEngine.from_directory(directory)


@pytest.mark.parametrize(
    ("old", "new", "marker", "message"),
    [
        ("p4 = perm, bind_type", "p4 = perm, type", "p4 =", "policy type must be: p4 = perm, bind_type"),
        ("r = sub, perm, obj, token, now", "r = sub, perm", "r =", "request must be: r = sub, perm, obj, token, now"),
        ("g4 = _, _", "g4 = _, _, _", "g4 =", "role definition must be: g4 = _, _"),
        ("p5 = type, parent", "p5 = type, parent\np6 = x, y", "p6 =", "p6 is not asked or filled by tokengate"),
    ],
)
def test_broken_model_is_located(
    policy_dir: Path, tmp_path: Path, old: str, new: str, marker: str, message: str
) -> None:
    directory = _copy(policy_dir, tmp_path)
    model = directory / "model.conf"
    text = model.read_text().replace(old, new)
    model.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith(marker))
    with pytest.raises(PolicyError) as caught:
        PolicyEngine.from_directory(directory)
    assert (caught.value.file, caught.value.line, caught.value.message) == (str(model), line, message)


def test_missing_files(policy_dir: Path, tmp_path: Path) -> None:
    directory = _copy(policy_dir, tmp_path)
    (directory / "model.conf").unlink()
    with pytest.raises(PolicyError, match=r"model.conf:0: cannot read"):
        PolicyEngine.from_directory(directory)
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(policy_dir / "model.conf", empty)
    with pytest.raises(PolicyError, match=r"empty:0: no \*.csv policy files"):
        PolicyEngine.from_directory(empty)


def test_reload_swaps_rules_and_keeps_them_on_error(policy_dir: Path, tmp_path: Path) -> None:
    from service.policy import AssignmentFact, EntityFact

    engine = PolicyEngine.from_directory(policy_dir)
    engine.replace_facts([EntityFact("p1", "project", None)], [AssignmentFact("a1", 7, "PROJECT.MEMBER", "p1", None)])
    member = Subject(7, False)
    assert not engine.decide(member, "PROJECT.UPDATE", "p1").allowed

    directory = _copy(policy_dir, tmp_path)
    number = _append(directory, "roles.csv", "g, PROJECT.MEMBER, PROJECT.UPDATE")
    engine.reload(directory)
    decision = engine.decide(member, "PROJECT.UPDATE", "p1")
    assert decision.allowed
    assert decision.rule == f"policies/roles.csv:{number}"

    catalogue = engine.permissions
    _append(directory, "roles.csv", "g, PROJECT.MEMBER, NOPE.NOTHING")
    with pytest.raises(PolicyError, match=r"unknown permission NOPE\.NOTHING"):
        engine.reload(directory)
    assert engine.permissions is catalogue
    assert engine.decide(member, "PROJECT.UPDATE", "p1").allowed  # the previous good rules still apply


def test_the_engine_package_imports_no_domain_model() -> None:
    """``service.policy`` is the engine alone: no domain model, tool, runtime or web layer comes with it."""
    code = "import sys, service.policy; print(' '.join(sorted(m for m in sys.modules if m.startswith('service.'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "service.policy.engine" in loaded
    # metrics: counters only; bounded: the memo's map
    outside = [name for name in loaded if name.split(".")[1] not in ("policy", "metrics", "bounded")]
    assert outside == []
