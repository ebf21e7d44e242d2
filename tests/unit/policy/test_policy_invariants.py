"""``tokengate policy assert``: the shipped invariants hold, planted edits break them, counterexamples explain."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from service.policy import PolicyEngine, Subject, TokenLimits
from service.policy_tools.cli import policy_group
from service.policy_tools.invariants import (
    INVARIANTS_FILE,
    NOW,
    Invariant,
    InvariantReport,
    Selector,
    World,
    build_world,
    load_invariants,
    report,
    situations,
)
from service.policy_tools.scenario import load_scenario


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(policy_group, [str(a) for a in args], catch_exceptions=False)


def shipped(policy_dir: Path) -> dict[str, Invariant]:
    return {invariant.name: invariant for invariant in load_invariants(policy_dir / INVARIANTS_FILE)}


def test_every_shipped_invariant_is_proved(policy_dir: Path) -> None:
    result = run("assert", policy_dir)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    names = shipped(policy_dir)
    assert len(names) >= 7
    assert len(lines) == len(names) + 1
    for line, (name, invariant) in zip(lines, names.items(), strict=False):
        assert line.startswith(f"{invariant.where}: {name}: proved ("), line
        assert line.endswith(" decisions)"), line
        assert int(line.rsplit("(", 1)[1].split()[0]) > 0
    assert lines[-1].startswith(f"{len(names)} invariants: {len(names)} proved, 0 not (")


# --- planted edits: one line of a copy of policies/ breaks each invariant ------------------------------------

# lines of the shipped model.conf that the edits below change
_BINDING_CLAUSE = (
    ' && (r.token == None || !r.token.bindings || !g3(r.perm, "global") && r.obj != "" && entity_exists(r.obj)'
    " && [b for b in r.token.bindings if !b.deleted && g4(b.uuid, b.type) && g2(r.obj, b.uuid)] != []) \\"
)
_ROLE_CLAUSE = (
    ' && (r.sub.is_staff || g3(r.perm, "global") || p.user == r.sub.user_id && r.now < p.expires'
    " && g(p.role, r.perm) && g2(r.obj, p.entity))"
)
_DELEGATE_CLAUSE = (
    ' && (r2.sub.is_staff || g3(r2.perm, "token") && p.user == r2.sub.user_id && r2.now < p.expires'
    ' && g(p.role, r2.perm) && entity_exists(p.entity) && (r2.obj == "" || g2(r2.obj, p.entity)))'
)
_BIND_MATCHER = "m3 = r3.perm == p4.perm && r3.type == p4.bind_type"
_BOUND_TO = " && [b for b in r.token.bindings if !b.deleted && g4(b.uuid, b.type) && g2(r.obj, b.uuid)] != []"

PLANTED: dict[str, tuple[str, str | None, str | None]] = {  # invariant -> (file, line before, line after)
    "only-owner-delegates-project-delete": ("roles.csv", None, "g, PROJECT.MANAGER, PROJECT.DELETE"),
    "staff-access-never-bindable": (
        "model.conf",
        _BIND_MATCHER,
        _BIND_MATCHER.replace("r3.perm == p4.perm", '(r3.perm == p4.perm || g3(r3.perm, "global"))'),
    ),
    "staff-access-never-through-a-bound-token": (
        "model.conf",
        _BINDING_CLAUSE,
        _BINDING_CLAUSE.replace('!g3(r.perm, "global") && ', ""),
    ),
    "no-grant-upwards": (
        "model.conf",
        _ROLE_CLAUSE,
        _ROLE_CLAUSE.replace("g2(r.obj, p.entity)", "(g2(r.obj, p.entity) || g2(p.entity, r.obj))"),
    ),
    "bound-token-stays-below-its-binding": ("model.conf", _BINDING_CLAUSE, _BINDING_CLAUSE.replace(_BOUND_TO, "")),
    "no-project-role-grants-customer-permissions": ("roles.csv", None, "g, PROJECT.ADMIN, CUSTOMER.LIST_USERS"),
    "every-delegable-permission-binds-somewhere": ("roles.csv", None, "g, OFFERING.MANAGER, RESOURCE.LIST"),
    "staff-delegation-stays-with-staff": (
        "model.conf",
        _DELEGATE_CLAUSE,
        _DELEGATE_CLAUSE.replace("r2.sub.is_staff || ", 'r2.sub.is_staff || g3(r2.perm, "staff") || '),
    ),
    "project-member-only-reads": ("roles.csv", None, "g, PROJECT.MEMBER, RESOURCE.UPDATE"),
    "expired-roles-grant-nothing": ("model.conf", _ROLE_CLAUSE, _ROLE_CLAUSE.replace("r.now < p.expires && ", "")),
    "owner-deletes-its-projects": ("roles.csv", "g, CUSTOMER.OWNER, PROJECT.DELETE", None),
}
"""Each edit adds a line (before None), removes one (after None) or changes one; ``policies/README.md`` lists them."""


def test_every_shipped_invariant_has_a_planted_edit(policy_dir: Path) -> None:
    assert set(shipped(policy_dir)) == set(PLANTED)


def plant(copy: Path, name: str) -> int:
    """Make the edit planted for invariant ``name`` in ``copy``; return the number of the line it added or changed
    (for a removed line: the number it had)."""
    file, before, after = PLANTED[name]
    lines = (copy / file).read_text().splitlines()
    if before is None:
        lines.append(after or "")
        number = len(lines)
    else:
        assert lines.count(before) == 1, f"{before!r} is no longer one line of policies/{file}"
        number = lines.index(before) + 1
        lines[number - 1 : number] = [after] if after is not None else []
    (copy / file).write_text("\n".join(lines) + "\n")
    return number


def explained(scenario: Path, case: str, policy: Path) -> list[str]:
    result = run("explain", "--scenario", scenario, "--case", case, "--policy-dir", policy)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_edit_breaks_the_invariant_and_explain_confirms(
    copy: Path, tmp_path: Path, policy_dir: Path, name: str
) -> None:
    number = plant(copy, name)
    assert run("check", copy).exit_code == 0  # the loader takes the edit: it is the invariant that catches it
    written = tmp_path / "counterexamples"
    result = run("assert", copy, "--write", written)
    assert result.exit_code == 1
    invariant = shipped(policy_dir)[name]
    headline = next(out for out in result.stdout.splitlines() if f": {name}: " in out)
    assert headline.startswith(f"{copy / INVARIANTS_FILE}:{invariant.line}: {name}: VIOLATED: {invariant.says}; ")
    scenario = written / f"{name}.yaml"
    assert run("test", "--table", scenario, copy).exit_code == 0  # each case expects what the edited copy answers
    assert load_scenario(scenario).find_case("counterexample").allowed is not invariant.expected
    explain_premise = " (and --case premise)" if invariant.given else ""
    assert scenario.read_text().splitlines()[2].endswith(f"--case counterexample --policy-dir {copy}{explain_premise}")
    # the case the edit turned: the premise (answered yes) if there is one, else the counterexample itself
    turned = "premise" if invariant.given else "counterexample"
    answer = "ALLOW  " if invariant.given or not invariant.expected else "DENY  "
    edited, original = explained(scenario, turned, copy), explained(scenario, turned, policy_dir)
    assert edited[1].startswith(answer)
    assert original[1].startswith("DENY  " if answer == "ALLOW  " else "ALLOW  ")  # the edit made the difference
    file = PLANTED[name][0]
    named = re.compile(rf"\bpolicies/{re.escape(file)}:{number}\b")
    if file == "model.conf":  # a matcher line: the denial names it, as the clause that failed or the matcher asked
        denial = original if answer == "ALLOW  " else edited
        assert any(named.search(line) for line in denial), denial
    else:  # a grant rule: the allow names it as what grants the permission
        allow = edited if answer == "ALLOW  " else original
        assert any(named.search(line) for line in allow if line.lstrip().startswith("on ")), allow


def test_delegating_staff_permissions_through_roles_breaks_nothing(copy: Path) -> None:
    """m2 letting roles delegate staff-only permissions is harmless: no role may grant a global permission."""
    plant_line = _DELEGATE_CLAUSE.replace('g3(r2.perm, "token")', 'g3(r2.perm, "delegable")')
    text = (copy / "model.conf").read_text()
    (copy / "model.conf").write_text(text.replace(f"\n{_DELEGATE_CLAUSE}\n", f"\n{plant_line}\n"))
    assert (copy / "model.conf").read_text() != text
    assert run("assert", copy).exit_code == 0


# --- counterexamples ask the invariant's question ------------------------------------------------------------

QUESTION_CASES = """\
now: 2030-01-01T12:00:00Z
users: {owner: {}, member: {}}
entities: {acme: customer, apollo: {type: project, parent: acme}, shop: {type: offering, parent: acme}}
assignments:
  - {user: owner, role: CUSTOMER.OWNER, entity: acme}
  - {user: member, role: PROJECT.MEMBER, entity: apollo}
cases:
  - {name: owner-delegates, question: delegate, subject: owner, permission: PROJECT.DELETE, entity: ~, expect: allow}
  - {question: delegate, subject: owner, permission: PROJECT.DELETE, entity: apollo, expect: allow, clause: m2}
  - {question: delegate, subject: member, permission: PROJECT.DELETE, entity: ~, expect: deny, clause: m2}
  - {question: delegate, subject: member, permission: RESOURCE.LIST, entity: acme, expect: deny, clause: m2}
  - {question: delegate, subject: member, permission: RESOURCE.LIST, entity: apollo, expect: allow, clause: m2}
  - {name: no-bind-type, question: bind, subject: owner, permission: RESOURCE.LIST, entity: shop, expect: deny}
  - {question: bind, subject: owner, permission: RESOURCE.LIST, entity: acme, expect: allow, clause: m4}
  - {question: bind, subject: owner, permission: RESOURCE.LIST, entity: apollo, expect: deny, clause: m4}
  - {question: bind, subject: member, permission: RESOURCE.LIST, entity: apollo, expect: allow, clause: m4}
  - {question: bind, subject: member, permission: RESOURCE.LIST, entity: acme, expect: deny, clause: m4}
  - {question: bind, subject: owner, permission: RESOURCE.LIST, entity: shop, expect: deny, clause: m3}
"""


def test_a_case_may_ask_delegate_or_bind(tmp_path: Path, policy_dir: Path) -> None:
    table = tmp_path / "questions.yaml"
    table.write_text(QUESTION_CASES)
    result = run("test", "--table", table, policy_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"{table}:8: ok   owner delegate PROJECT.DELETE - -> allow (m2)"
    assert result.stdout.splitlines()[-1] == "11 passed, 0 failed"


def test_explain_a_delegate_case(tmp_path: Path, policy_dir: Path) -> None:
    table = tmp_path / "questions.yaml"
    table.write_text(QUESTION_CASES)
    lines = explained(table, "owner-delegates", policy_dir)
    assert lines[1] == "ALLOW  owner  PROJECT.DELETE  delegate to an unbound token"
    assert lines[3] == "  matchers:"
    assert re.fullmatch(r"    policies/model\.conf:\d+  m2 = .*", lines[4]), lines[4]
    assert any(
        line.startswith("    on acme (customer): CUSTOMER.OWNER") and "grants PROJECT.DELETE" in line for line in lines
    )
    assert lines[-2:] == ["  clause:    m2", "  reason:    user 1 may put PROJECT.DELETE in an unbound token"]


def test_explain_a_bind_case(tmp_path: Path, policy_dir: Path) -> None:
    table = tmp_path / "questions.yaml"
    table.write_text(QUESTION_CASES)
    lines = explained(table, "no-bind-type", policy_dir)
    assert lines[1] == "DENY  owner  RESOURCE.LIST  bind to the type of shop (offering)"
    assert [line.split()[1] for line in lines[4:6]] == ["m3", "m4"]
    assert lines[-2:] == ["  clause:    m3", "  reason:    no token may bind RESOURCE.LIST to offering entities"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("{question: permit, subject: owner, permission: X, expect: allow}", "question must be one of allow, delegate"),
        ("{question: bind, subject: owner, permission: X, entity: ~, expect: allow}", "a bind case needs an entity"),
        (
            "{question: delegate, subject: owner-ro, permission: X, expect: allow}",
            "a delegate case asks about a user, not a token",
        ),
    ],
)
def test_a_malformed_question_case_is_refused_with_its_line(
    tmp_path: Path, policy_dir: Path, case: str, message: str
) -> None:
    table = tmp_path / "bad.yaml"
    table.write_text(
        "users: {owner: {}}\nentities: {acme: customer}\n"
        "tokens: {owner-ro: {user: owner, scopes: [X]}}\n"
        f"cases:\n  - {case}\n"
    )
    result = run("test", "--table", table, policy_dir)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{table}:5: {message}"), result.stdout


# --- the world -----------------------------------------------------------------------------------------------


@pytest.fixture(name="world")
def fx_world(policy_dir: Path) -> World:
    return build_world(PolicyEngine.from_directory(policy_dir))


def test_the_world_of_the_default_policy(world: World) -> None:
    by_type: dict[str, list[str]] = {}
    for entity in world.entities.values():
        by_type.setdefault(entity.type, []).append(entity.uuid)
    assert {kind: len(uuids) for kind, uuids in by_type.items()} == {
        "customer": 2,
        "project": 4,
        "resource": 4,
        "offering": 4,
    }
    assert [e.parent for e in world.entities.values() if e.type == "customer"] == [None, None]
    assert world.position("project-2", "project-1") == "sibling"
    assert world.position("customer-1", "resource-1") == "ancestor"
    assert world.position("resource-1", "customer-1") == "descendant"
    assert world.position("project-3", "project-1") == "other"
    assert world.position(None, "project-1") == "none"
    roles = {(m.role, m.holder, m.live) for m in world.members}
    assert ("PROJECT.MEMBER", "project-2", False) in roles
    assert ("CUSTOMER.OWNER", "customer-2", True) in roles
    assert [m.name for m in world.members if m.staff] == ["staff"]


def test_a_nesting_type_repeats_on_a_chain(deep_policy_dir: Path) -> None:
    world = build_world(PolicyEngine.from_directory(deep_policy_dir))
    deepest = max(world.entities, key=lambda uuid: len(world.chain(uuid)))
    assert [world.entities[u].type for u in world.chain(deepest)] == ["item", "folder", "folder", "folder", "org"]


SAMPLE_PERMISSIONS = ("CUSTOMER.UPDATE", "PROJECT.DELETE", "RESOURCE.LIST", "SERVICE_ACCOUNT.MANAGE", "STAFF.ACCESS")


def _every_situation(world: World) -> Iterator[tuple[object, bool]]:
    """Every situation (not one per shape) and the engine's answer, keyed as the prover dedupes."""
    engine = world.engine
    for member in world.members:
        for target in [None, *world.entities]:
            for bound in [None, "", *world.entities]:
                token = None if bound is None else frozenset({bound} if bound else ())
                key = (
                    member.role,
                    member.live,
                    member.staff,
                    token is None,
                    world.shape(member.holder, bound or None, target),
                )
                for permission in SAMPLE_PERMISSIONS:
                    limits = None if token is None else TokenLimits(frozenset({permission}), token)
                    subject = Subject(member.user_id, member.staff, limits)
                    yield (key, permission), engine.decide(subject, permission, target, NOW).allowed


def test_situations_of_one_shape_are_decided_alike(world: World) -> None:
    """What lets the prover ask one situation per shape: the evaluator cannot tell them apart."""
    answers: dict[object, set[bool]] = {}
    for key, allowed in _every_situation(world):
        answers.setdefault(key, set()).add(allowed)
    assert len(answers) > 1000
    assert all(len(seen) == 1 for seen in answers.values())


def test_situations_follow_the_quantifiers(world: World, policy_dir: Path) -> None:
    invariant = shipped(policy_dir)["bound-token-stays-below-its-binding"]
    found = list(situations(world, invariant))
    assert found
    assert all(s.bound and world.entities[s.bound].type == "project" for s in found)
    assert {world.position(s.target, s.bound) for s in found} == {"ancestor", "sibling"}
    assert {s.member.staff for s in found} == {True, False}


def test_selectors() -> None:
    customer = Selector(("CUSTOMER.*",))
    assert customer.matches("CUSTOMER.OWNER")
    assert not customer.matches("PROJECT.ADMIN")
    assert not customer.matches(None)
    assert not Selector(("*",)).matches(None)
    assert Selector(("none",)).matches(None)
    assert not Selector(("none",)).matches("CUSTOMER.OWNER")
    others = Selector(("CUSTOMER.OWNER",), negated=True)
    assert others.matches(None)
    assert others.matches("PROJECT.ADMIN")
    assert not others.matches("CUSTOMER.OWNER")
    assert Selector().matches(None)
    assert Selector().matches("anything")


# --- malformed files -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("- name: a\n  says: b\n  never: allow\n  colour: red\n", 4, "unknown key 'colour'"),
        ("- name: a\n  says: b\n", 1, "an invariant says exactly one of never or always"),
        ("- name: a\n  says: b\n  never: allow\n  always: allow\n", 4, "exactly one of never or always"),
        ("- name: a\n  says: b\n  never: permit\n", 3, "never takes a question: one of allow, delegate, bind"),
        ("- name: a\n  says: b\n  never: allow\n  target: above\n", 4, "'above' is not one of same, ancestor"),
        ("- name: a\n  says: b\n  never: delegate\n  target: same\n", 4, "target needs a target"),
        ("- name: a\n  says: b\n  never: bind\n  token: bound\n", 4, "token applies to the question allow only"),
        ("- name: a\n  says: b\n  never: allow\n  role: {but: X}\n", 4, "a selector is PATTERN"),
        ("- name: a\n  says: b\n  never: allow\n  live: maybe\n", 4, "live must be true or false"),
        ("- name: a\n  never: allow\n", 1, "says must be a non-empty text"),
        ("- name: ../up\n  says: b\n  never: allow\n", 1, "a name is lower-case words joined by hyphens"),
        ("- name: a\n  says: b\n  never: allow\n  3: x\n", 1, "unknown key 3"),
        ("- {name: a, says: b, never: allow}\n- {name: a, says: c, never: allow}\n", 2, "'a' is declared twice"),
        ("name: a\n", 1, "the invariants file is a list of invariants"),
        ("- name: a\n  says: [b\n", 3, "not valid YAML"),
        ("- name: a\n  says: b\n\tnever: allow\n", 3, "not valid YAML"),
        ("- name: a\n  says: b\n  never: allow\n  roles: PROJECT.ADMIN\n", 4, "unknown key 'roles'; expected one of"),
        ("- name: a\n  says: b\n  never: allow\n  permission: [CUSTOMER.*, 3]\n", 4, "a selector is PATTERN"),
        ("- name: a\n  says: b\n  never: allow\n  permission: {not: []}\n", 4, "a selector is PATTERN"),
        ("- name: a\n  says: b\n  never: allow\n  delegation: sometimes\n", 4, "'sometimes' is not one of token"),
        ("- says: b\n  never: allow\n", 1, "name must be a non-empty text"),
        ("- name: a\n  says: b\n  never:\n", 3, "never takes a question"),
        ("- name: a\n  says: b\n  never: allow\n- just a line\n", 4, "an invariant is a mapping"),
    ],
)
def test_a_malformed_file_is_refused_with_its_line(copy: Path, text: str, line: int, message: str) -> None:
    (copy / INVARIANTS_FILE).write_text(text)
    result = run("assert", copy)
    assert result.exit_code == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{copy / INVARIANTS_FILE}:{line}: "), first
    assert message in first


def test_the_command_refuses_a_malformed_file_without_a_traceback(copy: Path) -> None:
    (copy / INVARIANTS_FILE).write_text("- name: a\n  says: b\n  never: allow\n  colour: red\n")
    command = [sys.executable, "-m", "service.policy_tools", "assert", str(copy)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stdout.startswith(f"{copy / INVARIANTS_FILE}:4: unknown key 'colour'; expected one of ")
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("quantifier", "pattern"), [("role", "PROJECT.MANGER"), ("permission", "CUSTOMER.NOPE"), ("held_on", "tenant")]
)
def test_a_quantifier_naming_nothing_fails(copy: Path, quantifier: str, pattern: str) -> None:
    (copy / INVARIANTS_FILE).write_text(
        f"- {{name: good, says: fine, never: delegate, permission: STAFF.ACCESS, subject: user}}\n"
        f"- {{name: typo, says: no typo, never: allow, {quantifier}: {pattern}}}\n"
    )
    result = run("assert", copy)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1] == f"{copy / INVARIANTS_FILE}:2: typo: cannot be checked: " + (
        f"{quantifier} {pattern!r} matches nothing the policy declares"
    )


def test_an_invariant_true_of_nothing_fails(copy: Path) -> None:
    (copy / INVARIANTS_FILE).write_text(
        "- {name: empty, says: owners held on projects, never: allow, role: CUSTOMER.OWNER, held_on: project}\n"
    )
    result = run("assert", copy)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"{copy / INVARIANTS_FILE}:1: empty: cannot be checked: " + (
        "no situation of the world is in range (nothing to prove)"
    )


# --- diff ----------------------------------------------------------------------------------------------------


def test_diff_names_the_invariants_a_change_breaks(policy_dir: Path, copy: Path) -> None:
    with (copy / "roles.csv").open("a") as out:
        out.write("g, PROJECT.MANAGER, PROJECT.DELETE\n")
    invariant = shipped(policy_dir)["only-owner-delegates-project-delete"]
    lines = run("diff", policy_dir, copy).stdout.splitlines()
    assert lines == [
        "+ PROJECT.MANAGER (held on project) gains PROJECT.DELETE",
        f"! breaks invariant only-owner-delegates-project-delete ({invariant.where}): {invariant.says}; "
        "available_scopes of project-manager-project-1 includes PROJECT.DELETE",
    ]


def test_diff_does_not_blame_a_change_for_an_invariant_already_broken(policy_dir: Path, copy: Path) -> None:
    with (copy / "roles.csv").open("a") as out:
        out.write("g, PROJECT.MANAGER, PROJECT.DELETE\n")
    other = copy.parent / "other"
    shutil.copytree(copy, other)
    with (other / "roles.csv").open("a") as out:
        out.write("g, CUSTOMER.SUPPORT, RESOURCE.UPDATE\n")
    assert run("diff", copy, other).stdout.splitlines() == [
        "+ CUSTOMER.SUPPORT (held on customer) gains RESOURCE.UPDATE"
    ]


# --- the service's report ------------------------------------------------------------------------------------


def test_the_report_shows_a_counterexample_and_follows_the_files(copy: Path) -> None:
    assert {i.status for i in report(copy).invariants} == {"proved"}
    with (copy / "roles.csv").open("a") as out:
        out.write("g, PROJECT.ADMIN, CUSTOMER.LIST_USERS\n")
    statuses = {i.name: i for i in report(copy).invariants}
    broken = statuses["no-project-role-grants-customer-permissions"]
    assert broken.status == "violated"
    assert "cases:\n  - {name: counterexample" in broken.detail
    (copy / INVARIANTS_FILE).write_text("- name: a\n")
    assert report(copy).problem == f"{copy.name}/{INVARIANTS_FILE}:1: says must be a non-empty text"
    (copy / INVARIANTS_FILE).unlink()
    assert report(copy) == InvariantReport(file=f"{copy.name}/{INVARIANTS_FILE}", problem=None, invariants=[])


def test_ci_proves_the_shipped_invariants(policy_dir: Path) -> None:
    assert (
        "\n.venv/bin/python -m service.policy_tools assert policies\n"
        in (policy_dir.parent / ".ci" / "run").read_text()
    )
