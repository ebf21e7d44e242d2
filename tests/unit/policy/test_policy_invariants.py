"""``tokengate policy assert``: the shipped invariants hold, planted edits break them, counterexamples explain."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from service.policy import Decision, PolicyEngine, Subject, TokenLimits
from service.policy_tools.cli import policy_group
from service.policy_tools.explain import explain
from service.policy_tools.invariants import (
    INVARIANTS_FILE,
    NOW,
    Invariant,
    InvariantReport,
    Selector,
    World,
    build_world,
    load_invariants,
    prove,
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
        assert line.startswith(f"{invariant.where}: {name}: proved (") and line.endswith(" decisions)"), line
        assert int(line.rsplit("(", 1)[1].split()[0]) > 0
    assert lines[-1].startswith(f"{len(names)} invariants: {len(names)} proved, 0 not (")


# --- planted edits: one line of a copy of policies/ breaks each invariant ------------------------------------

PLANTED = {  # invariant -> (file, line removed, line added)
    "only-owner-delegates-project-delete": ("roles.csv", None, "g, PROJECT.MANAGER, PROJECT.DELETE"),
    "no-project-role-grants-customer-permissions": ("roles.csv", None, "g, PROJECT.ADMIN, CUSTOMER.LIST_USERS"),
    "every-delegable-permission-binds-somewhere": ("roles.csv", None, "g, OFFERING.MANAGER, RESOURCE.LIST"),
    "project-member-only-reads": ("roles.csv", None, "g, PROJECT.MEMBER, RESOURCE.UPDATE"),
    "owner-deletes-its-projects": ("roles.csv", "g, CUSTOMER.OWNER, PROJECT.DELETE", None),
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_a_planted_edit_breaks_the_invariant_and_explain_confirms(
    copy: Path, tmp_path: Path, policy_dir: Path, name: str
) -> None:
    file, removed, added = PLANTED[name]
    text = (copy / file).read_text()
    if removed is not None:
        assert f"\n{removed}\n" in text
        text = text.replace(f"\n{removed}\n", "\n")
    (copy / file).write_text(text + (f"{added}\n" if added else ""))
    written = tmp_path / "counterexamples"
    result = run("assert", copy, "--write", written)
    assert result.exit_code == 1
    invariant = shipped(policy_dir)[name]
    headline = next(out for out in result.stdout.splitlines() if f": {name}: " in out)
    assert headline.startswith(f"{copy / INVARIANTS_FILE}:{invariant.line}: {name}: VIOLATED: {invariant.says}; ")
    scenario = written / f"{name}.yaml"
    confirmed = run("explain", "--scenario", scenario, "--case", "counterexample", "--policy-dir", copy)
    assert confirmed.exit_code == 0, confirmed.output
    trace = confirmed.stdout.splitlines()
    # an added grant shows as the rule that decided; a removed one as the allow that is missing
    assert trace[1].startswith("ALLOW  " if added else "DENY  ")
    if added:
        planted_at = f"[policies/{file}:{len(text.splitlines()) + 1}]"
        assert any(planted_at in line and "<- decided" in line for line in trace), trace
    assert run("test", "--table", scenario, copy).exit_code == 0  # the case's expectation is what it decides
    before = run("explain", "--scenario", scenario, "--case", "counterexample", "--policy-dir", policy_dir)
    assert before.stdout.splitlines()[1].startswith("DENY  " if added else "ALLOW  ")  # the edit made the difference


# --- invariants the engine's Python keeps today: a one-clause change of the evaluator breaks each -------------
# Each mutant is the evaluator with one clause changed, as a one-line edit of a model that decides that clause
# would change it; the prover must find the violation, and the mutant's own explanation must show it.


class _IgnoresBindings(PolicyEngine):
    """A token's bindings are not checked."""

    def decide(self, subject: Subject, permission: str, entity: str | None, now: datetime | None = None) -> Decision:
        if subject.token is not None:
            subject = Subject(subject.user_id, subject.is_staff, TokenLimits(subject.token.scopes, frozenset()))
        return super().decide(subject, permission, entity, now)


class _BoundGlobal(PolicyEngine):
    """A bound token passes global permissions as an unbound one does."""

    def decide(self, subject: Subject, permission: str, entity: str | None, now: datetime | None = None) -> Decision:
        if subject.token is not None and self.permissions[permission].global_only:
            subject = Subject(subject.user_id, subject.is_staff, TokenLimits(subject.token.scopes, frozenset()))
        return super().decide(subject, permission, entity, now)


class _GrantsUpwards(PolicyEngine):
    """A role held below the entity counts too."""

    def decide(self, subject: Subject, permission: str, entity: str | None, now: datetime | None = None) -> Decision:
        decision = super().decide(subject, permission, entity, now)
        for uuid in self.entity_uuids():
            if not decision.allowed and entity is not None and entity in self.ancestors(uuid)[1:]:
                decision = super().decide(subject, permission, uuid, now)
        return decision


class _IgnoresExpiry(PolicyEngine):
    """Assignments are looked at as two hours earlier."""

    def decide(self, subject: Subject, permission: str, entity: str | None, now: datetime | None = None) -> Decision:
        return super().decide(subject, permission, entity, (now or NOW) - timedelta(hours=2))


class _StaffScopesForAll(PolicyEngine):
    """Every user may delegate the permissions only staff may delegate."""

    def delegable_scopes(self, user_id: int, is_staff: bool, now: datetime | None = None) -> list[str]:
        staff_only = [name for name, spec in self.permissions.items() if spec.delegation == "staff"]
        return [*super().delegable_scopes(user_id, is_staff, now), *staff_only]


class _BindsGlobals(PolicyEngine):
    """Global permissions bind to every entity type."""

    def binding_targets(self, user_id: int, is_staff: bool, now: datetime | None = None) -> dict[str, list[str]]:
        globals_ = {name: sorted(self.entity_types) for name, spec in self.permissions.items() if spec.global_only}
        return {**super().binding_targets(user_id, is_staff, now), **globals_}


MUTANTS: dict[str, type[PolicyEngine]] = {
    "staff-access-never-bindable": _BindsGlobals,
    "staff-access-never-through-a-bound-token": _BoundGlobal,
    "no-grant-upwards": _GrantsUpwards,
    "bound-token-stays-below-its-binding": _IgnoresBindings,
    "staff-delegation-stays-with-staff": _StaffScopesForAll,
    "expired-roles-grant-nothing": _IgnoresExpiry,
}


def test_every_shipped_invariant_has_a_planted_edit_or_a_mutant(policy_dir: Path) -> None:
    assert set(shipped(policy_dir)) == set(PLANTED) | set(MUTANTS)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_mutant_evaluator_breaks_the_invariant_and_its_explanation_confirms(
    policy_dir: Path, tmp_path: Path, name: str
) -> None:
    invariant = shipped(policy_dir)[name]
    world = build_world(MUTANTS[name].from_directory(policy_dir))
    outcome = prove(world, invariant, policy_dir)
    assert outcome.status == "violated"
    assert outcome.counterexample is not None
    assert prove(build_world(PolicyEngine.from_directory(policy_dir)), invariant, policy_dir).status == "proved"
    path = tmp_path / "counterexample.yaml"
    path.write_text(outcome.scenario)
    scenario = load_scenario(path)
    case = scenario.find_case("counterexample")
    mutant = MUTANTS[name].from_directory(policy_dir, memo_size=0)
    mutant.replace_facts(scenario.entities.values(), scenario.assignments)
    decision, trace = explain(mutant, scenario.subject(case.subject), case.permission, case.entity, case.now)
    assert decision.allowed is case.allowed  # the scenario records what the evaluator decides there
    if invariant.question == "allow":  # ... which is the very decision the invariant forbids
        s = outcome.counterexample
        assert (case.permission, case.entity, trace[0].split()[0]) == (s.permission, s.target, "ALLOW")


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
    ],
)
def test_a_malformed_file_is_refused_with_its_line(copy: Path, text: str, line: int, message: str) -> None:
    (copy / INVARIANTS_FILE).write_text(text)
    result = run("assert", copy)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{copy / INVARIANTS_FILE}:{line}: ") and message in result.stdout, result.stdout


def test_a_quantifier_naming_nothing_fails(copy: Path) -> None:
    (copy / INVARIANTS_FILE).write_text("- {name: typo, says: no typo, never: allow, role: PROJECT.MANGER}\n")
    result = run("assert", copy)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"{copy / INVARIANTS_FILE}:1: typo: cannot be checked: " + (
        "role 'PROJECT.MANGER' matches nothing the policy declares"
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
