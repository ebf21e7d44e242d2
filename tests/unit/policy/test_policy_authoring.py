"""What a policy author can do by editing only files in ``policies/``: each edit on a copy, checked end to end.

Every test edits a copy of the shipped policy and looks at decisions, ``delegable_scopes`` (available_scopes),
``binding_targets`` (available_binding_targets), the review matrix and ``policy diff``.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.policy import AssignmentFact, EntityFact, PolicyEngine, Subject, TokenLimits
from service.policy.loader import load_rules
from service.policy_tools.diff import diff_matrices
from service.policy_tools.matrix import PolicyMatrix, RoleRow, build_matrix

NOW = datetime(2030, 1, 1, tzinfo=UTC)
OWNER, MANAGER, AUDITOR, VIEWER = 1, 2, 3, 4
TREE = [
    EntityFact("acme", "customer", None),
    EntityFact("apollo", "project", "acme"),
    EntityFact("vm1", "resource", "apollo"),
]


@pytest.fixture(name="copy")
def fx_copy(policy_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(policy_dir, target, ignore=shutil.ignore_patterns("*.md", "tests"))
    return target


def append(directory: Path, name: str, *lines: str) -> None:
    path = directory / name
    path.write_text(path.read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n")


def edit_model(directory: Path, old: str, new: str) -> None:
    model = directory / "model.conf"
    text = model.read_text()
    assert old in text
    model.write_text(text.replace(old, new))


def world(directory: Path, entities: list[EntityFact] = TREE, *assignments: AssignmentFact) -> PolicyEngine:
    engine = PolicyEngine.from_directory(directory)
    engine.replace_facts(
        entities,
        [
            AssignmentFact("a-owner", OWNER, "CUSTOMER.OWNER", "acme", None),
            AssignmentFact("a-manager", MANAGER, "PROJECT.MANAGER", "apollo", None),
            *assignments,
        ],
    )
    return engine


def matrices(before: Path, after: Path) -> tuple[PolicyMatrix, PolicyMatrix, list[str]]:
    old, new = build_matrix(load_rules(before)), build_matrix(load_rules(after))
    return old, new, diff_matrices(old, new)


def role(matrix: PolicyMatrix, name: str) -> RoleRow:
    return next(row for row in matrix.roles if row.name == name)


def allowed(engine: PolicyEngine, user: int, permission: str, entity: str) -> bool:
    return engine.decide(Subject(user, False), permission, entity, NOW).allowed


def test_add_a_role(policy_dir: Path, copy: Path) -> None:
    append(copy, "roles.csv", "p2, PROJECT.AUDITOR, project, Audits a project", "g, PROJECT.AUDITOR, RESOURCE.LIST")
    engine = world(copy, TREE, AssignmentFact("a-auditor", AUDITOR, "PROJECT.AUDITOR", "apollo", None))
    assert allowed(engine, AUDITOR, "RESOURCE.LIST", "vm1")
    assert not allowed(engine, AUDITOR, "RESOURCE.UPDATE", "vm1")
    assert engine.delegable_scopes(AUDITOR, False, NOW) == ["RESOURCE.LIST"]
    assert engine.binding_targets(AUDITOR, False, NOW) == {"RESOURCE.LIST": ["project"]}
    _, new, diff = matrices(policy_dir, copy)
    assert role(new, "PROJECT.AUDITOR").reaches == {"RESOURCE.LIST": ["project", "resource"]}
    assert diff == ["+ role PROJECT.AUDITOR (held on project) grants RESOURCE.LIST"]


def test_add_a_permission(policy_dir: Path, copy: Path) -> None:
    append(
        copy, "permissions.csv", "p3, PROJECT.ARCHIVE, entity, token, Archive a project", "p4, PROJECT.ARCHIVE, project"
    )
    append(copy, "roles.csv", "g, PROJECT.MANAGER, PROJECT.ARCHIVE")
    engine = world(copy)
    assert allowed(engine, MANAGER, "PROJECT.ARCHIVE", "apollo")
    assert not allowed(engine, OWNER, "PROJECT.ARCHIVE", "apollo")
    assert "PROJECT.ARCHIVE" in engine.delegable_scopes(MANAGER, False, NOW)
    assert engine.binding_targets(MANAGER, False, NOW)["PROJECT.ARCHIVE"] == ["project"]
    _, new, diff = matrices(policy_dir, copy)
    assert next(p for p in new.permissions if p.name == "PROJECT.ARCHIVE").granted_by == ["PROJECT.MANAGER"]
    assert diff == [
        "+ permission PROJECT.ARCHIVE (entity, delegation token, binds to project)",
        "+ PROJECT.MANAGER (held on project) gains PROJECT.ARCHIVE",
    ]


def test_add_an_entity_type_that_nests_under_itself(policy_dir: Path, copy: Path) -> None:
    append(copy, "entities.csv", "p5, folder, project", "p5, folder, folder")
    append(copy, "permissions.csv", "p3, FOLDER.READ, entity, token, Read a folder", "p4, FOLDER.READ, folder")
    append(copy, "roles.csv", "p2, FOLDER.VIEWER, folder, Reads a folder", "g, FOLDER.VIEWER, FOLDER.READ")
    append(copy, "roles.csv", "g, PROJECT.MANAGER, FOLDER.READ")
    folders = [EntityFact(f"f{i}", "folder", f"f{i - 1}" if i > 1 else "apollo") for i in range(1, 16)]
    engine = world(copy, [*TREE, *folders], AssignmentFact("a-viewer", VIEWER, "FOLDER.VIEWER", "f3", None))
    assert len(engine.ancestors("f15")) == 17  # deeper than Casbin's default role manager would follow
    assert allowed(engine, MANAGER, "FOLDER.READ", "f15")
    assert allowed(engine, VIEWER, "FOLDER.READ", "f15")
    assert not allowed(engine, VIEWER, "FOLDER.READ", "f2")
    assert engine.binding_targets(VIEWER, False, NOW) == {"FOLDER.READ": ["folder"]}
    assert engine.delegable_scopes(VIEWER, False, NOW) == ["FOLDER.READ"]
    _, new, diff = matrices(policy_dir, copy)
    assert role(new, "FOLDER.VIEWER").reaches == {"FOLDER.READ": ["folder"]}
    assert role(new, "PROJECT.MANAGER").reaches["FOLDER.READ"] == ["project", "resource", "folder"]
    assert diff[0] == "+ entity type folder (under project, folder)"


def test_a_permission_that_does_not_pass_down(policy_dir: Path, copy: Path) -> None:
    append(copy, "permissions.csv", "g3, PROJECT.UPDATE, held_here_only")
    edit_model(
        copy,
        "g(p.role, r.perm) && g2(r.obj, p.entity))",
        'g(p.role, r.perm) && g2(r.obj, p.entity) && (r.obj == p.entity || !g3(r.perm, "held_here_only")))',
    )
    engine = world(copy)
    assert allowed(engine, MANAGER, "PROJECT.UPDATE", "apollo")
    assert not allowed(engine, OWNER, "PROJECT.UPDATE", "apollo")  # the owner holds it on the customer only
    assert allowed(engine, OWNER, "PROJECT.LIST", "acme")
    assert allowed(engine, OWNER, "RESOURCE.UPDATE", "vm1")
    decision = engine.decide(Subject(OWNER, False), "PROJECT.UPDATE", "apollo", NOW)
    assert decision.clause == "role"
    assert "PROJECT.UPDATE" in engine.delegable_scopes(OWNER, False, NOW)
    old, new, diff = matrices(policy_dir, copy)
    assert role(old, "CUSTOMER.OWNER").reaches["PROJECT.UPDATE"] == ["customer", "project", "resource", "offering"]
    assert role(new, "CUSTOMER.OWNER").reaches["PROJECT.UPDATE"] == ["customer"]
    assert "~ CUSTOMER.OWNER (held on customer): PROJECT.UPDATE on -project -resource -offering" in diff


def test_delegable_only_where_the_role_is_held(policy_dir: Path, copy: Path) -> None:
    append(copy, "permissions.csv", "g3, PROJECT.UPDATE, bind_where_held")
    edit_model(
        copy,
        '(r2.obj == "" || g2(r2.obj, p.entity))',
        '(r2.obj == "" || g2(r2.obj, p.entity) && (r2.obj == p.entity || !g3(r2.perm, "bind_where_held")))',
    )
    engine = world(copy)
    assert allowed(engine, OWNER, "PROJECT.UPDATE", "apollo")  # decisions are unchanged ...
    assert engine.may_delegate(OWNER, False, "PROJECT.UPDATE", "acme", NOW)
    assert not engine.may_delegate(OWNER, False, "PROJECT.UPDATE", "apollo", NOW)  # ... binding below is not
    assert engine.may_delegate(OWNER, False, "PROJECT.LIST", "acme", NOW)
    assert engine.may_delegate(MANAGER, False, "PROJECT.UPDATE", "apollo", NOW)
    assert engine.delegable_scopes(OWNER, False, NOW) == world(policy_dir).delegable_scopes(OWNER, False, NOW)
    assert engine.binding_targets(OWNER, False, NOW)["PROJECT.UPDATE"] == ["customer"]
    _, new, diff = matrices(policy_dir, copy)
    assert role(new, "CUSTOMER.OWNER").delegates["PROJECT.UPDATE"] == ["customer"]
    assert diff == ["~ CUSTOMER.OWNER (held on customer): tokens carrying PROJECT.UPDATE bind to -project"]


def test_narrow_the_matcher(policy_dir: Path, copy: Path) -> None:
    """No inheritance at all: a role counts on the entity it is held on only."""
    edit_model(copy, "g(p.role, r.perm) && g2(r.obj, p.entity))", "g(p.role, r.perm) && r.obj == p.entity)")
    engine = world(copy)
    assert allowed(engine, OWNER, "CUSTOMER.UPDATE", "acme")
    assert not allowed(engine, OWNER, "RESOURCE.UPDATE", "vm1")
    assert allowed(engine, MANAGER, "PROJECT.UPDATE", "apollo")
    assert not allowed(engine, MANAGER, "RESOURCE.LIST", "vm1")
    _, new, diff = matrices(policy_dir, copy)
    assert role(new, "PROJECT.MANAGER").reaches["RESOURCE.LIST"] == ["project"]
    assert "~ PROJECT.MANAGER (held on project): RESOURCE.LIST on -resource" in diff


def test_narrow_the_matcher_with_a_clause_of_its_own(copy: Path) -> None:
    """A clause added at the end of m: tokens never terminate resources; denials name its line."""
    edit_model(
        copy,
        "g2(r.obj, p.entity))\n",
        'g2(r.obj, p.entity)) \\\n && (r.token == None || r.perm != "RESOURCE.TERMINATE")\n',
    )
    line = next(n for n, text in enumerate((copy / "model.conf").read_text().splitlines(), 1) if "TERMINATE" in text)
    engine = world(copy)
    assert allowed(engine, OWNER, "RESOURCE.TERMINATE", "vm1")
    token = Subject(OWNER, False, TokenLimits(frozenset({"RESOURCE.TERMINATE"}), frozenset()))
    decision = engine.decide(token, "RESOURCE.TERMINATE", "vm1", NOW)
    assert (decision.allowed, decision.clause, decision.rule) == (False, *[f"policies/model.conf:{line}"] * 2)


def test_widen_the_matcher(policy_dir: Path, copy: Path) -> None:
    """Bind types from the declaration of the entity types instead of p4: any permission binds to any type."""
    edit_model(copy, "m3 = r3.perm == p4.perm && r3.type == p4.bind_type", "m3 = r3.perm == p4.perm")
    engine = world(copy)
    assert engine.may_bind("PROJECT.UPDATE", "resource")
    assert engine.binding_targets(MANAGER, False, NOW)["RESOURCE.LIST"] == ["project"]
    _, new, diff = matrices(policy_dir, copy)
    assert next(p for p in new.permissions if p.name == "PROJECT.UPDATE").bind_types == list(
        load_rules(copy).entity_types
    )
    assert "~ permission PROJECT.UPDATE: bind types +resource +offering" in diff


def test_the_default_matrix_agrees_with_the_tables(policy_dir: Path) -> None:
    """The matrix is asked of the model; on the shipped model its answers are what the tables declare."""
    rules = load_rules(policy_dir)
    matrix = build_matrix(rules)
    for row in matrix.roles:
        assert sorted(row.permissions) == sorted(rules.roles[row.name].permissions)
        assert all(row.reaches[p] == row.applies_to for p in row.permissions), row.name
    for permission in matrix.permissions:
        spec = rules.permissions[permission.name]
        assert (permission.bind_types, permission.delegation) == (list(spec.bind_types), spec.delegation)
