"""``tokengate policy check|test|explain|matrix|diff`` on the shipped policy and on broken copies of it."""

from __future__ import annotations

import csv
import io
import shutil
import sys
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner, Result

from service.policy import PolicyEngine
from service.policy_tools.cli import policy_group
from service.policy_tools.matrix import PolicyMatrix, build_matrix
from service.policy_tools.scenario import load_scenario


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(policy_group, [str(a) for a in args], catch_exceptions=False)


def append(directory: Path, name: str, *lines: str) -> list[int]:
    """Append lines to a file of ``directory``; return their line numbers."""
    path = directory / name
    text = path.read_text().rstrip("\n") + "\n"
    first = text.count("\n") + 1
    path.write_text(text + "".join(f"{line}\n" for line in lines))
    return list(range(first, first + len(lines)))


# --- check ---------------------------------------------------------------------------------------------------


def test_shipped_policy_passes_check(policy_dir: Path) -> None:
    result = run("check", policy_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{policy_dir}: ok (7 roles, 34 permissions, 4 entity types)\n"


@pytest.mark.parametrize(
    ("file", "lines", "message"),
    [
        (
            "roles.csv",
            ["g, CUSTOMER.OWNER, NOPE.NOTHING"],
            "unknown permission NOPE.NOTHING (declare it with a p3 line)",
        ),
        ("roles.csv", ["g, NOBODY.ROLE, PROJECT.LIST"], "unknown role NOBODY.ROLE (declare it with a p2 line)"),
        (
            "permissions.csv",
            ["p3, PROJECT.ARCHIVE, entity, token"],
            "permission PROJECT.ARCHIVE has no description (empty field)",
        ),
        (
            "permissions.csv",
            ["p3, PROJECT.ARCHIVE, entity, token, "],
            "permission PROJECT.ARCHIVE has no description (empty field)",
        ),
        (
            "permissions.csv",
            ["p4, PROJECT.LIST, planet"],
            "unknown entity type 'planet': a bind type must be declared by p5",
        ),
        (
            "entities.csv",
            ["p5, folder, customer", "p5, shelf, folder", "p5, folder, shelf"],
            "parent-type cycle: shelf -> folder -> shelf (only a type's own nesting is allowed)",
        ),
        (
            "entities.csv",
            ["p5, shelf, shelf"],
            "entity type shelf can never be created: no chain of parent types reaches a root type",
        ),
        (
            "roles.csv",
            ["g, CUSTOMER.OWNER, PROJECT.LIST"],
            "CUSTOMER.OWNER already grants PROJECT.LIST at policies/roles.csv:19",
        ),
        (
            "roles.csv",
            ["p2, PROJECT.MEMBER, project, Member of a project: sees its resources and orders"],
            "role PROJECT.MEMBER already declared at policies/roles.csv:95 (this line duplicates it)",
        ),
        (
            "roles.csv",
            ["p2, PROJECT.MEMBER, customer, Member of a project"],
            "role PROJECT.MEMBER already declared at policies/roles.csv:95 (this line contradicts it)",
        ),
        (
            "permissions.csv",
            ["p3, PROJECT.LIST, entity, never, List projects"],
            "permission PROJECT.LIST already declared at policies/permissions.csv:36 (this line contradicts it)",
        ),
        ("entities.csv", ["p5, project, -"], "entity type project cannot be both a root ('-') and have parent types"),
        (
            "permissions.csv",
            ["p4, SERVICE_ACCOUNT.MANAGE, project"],
            "SERVICE_ACCOUNT.MANAGE is never delegated to a token: a p4 line offers it to tokens",
        ),
        (
            "roles.csv",
            ["p2, PROJECT.AUDITOR, project, Audits a project"],
            "role PROJECT.AUDITOR grants nothing (add g lines or remove it)",
        ),
    ],
    ids=[
        "unknown-permission",
        "unknown-role",
        "no-description",
        "empty-description",
        "bind-type",
        "cycle",
        "no-root",
        "duplicate-grant",
        "duplicate-role",
        "contradicting-role",
        "contradicting-permission",
        "contradicting-root",
        "never-offered",
        "grants-nothing",
    ],
)
def test_each_problem_is_reported_at_its_line(copy: Path, file: str, lines: list[str], message: str) -> None:
    numbers = append(copy, file, *lines)
    line = numbers[1] if len(lines) == 3 else numbers[0]  # the cycle is reported where it first closes
    result = run("check", copy)
    assert result.exit_code == 1
    assert result.stdout == f"{copy / file}:{line}: {message}\n"
    assert result.stderr == f"1 problem in {copy}\n"


def test_check_reports_every_problem_not_just_the_first(copy: Path) -> None:
    roles = append(copy, "roles.csv", "g, NOBODY.ROLE, PROJECT.LIST", "g, CUSTOMER.OWNER, NOPE.NOTHING")
    perms = append(copy, "permissions.csv", "p4, PROJECT.LIST, planet")
    model = copy / "model.conf"
    model.write_text(model.read_text().replace("p4 = perm, bind_type", "p4 = perm, type"))
    result = run("check", copy)
    assert result.exit_code == 1
    model_line = next(n for n, row in enumerate(model.read_text().splitlines(), 1) if row.startswith("p4 ="))
    assert result.stdout.splitlines() == [
        f"{model}:{model_line}: policy type must be: p4 = perm, bind_type",
        f"{copy / 'permissions.csv'}:{perms[0]}: unknown entity type 'planet': a bind type must be declared by p5",
        f"{copy / 'roles.csv'}:{roles[0]}: unknown role NOBODY.ROLE (declare it with a p2 line)",
        f"{copy / 'roles.csv'}:{roles[1]}: unknown permission NOPE.NOTHING (declare it with a p3 line)",
    ]
    assert result.stderr == f"4 problems in {copy}\n"


def test_loading_still_stops_at_the_first_problem_and_tolerates_review_findings(copy: Path) -> None:
    append(copy, "roles.csv", "p2, PROJECT.AUDITOR, project, Audits a project")
    assert "PROJECT.AUDITOR" in PolicyEngine.from_directory(copy).roles  # review finding only: the service runs


# --- test ----------------------------------------------------------------------------------------------------


def test_shipped_decision_tables_pass(policy_dir: Path) -> None:
    """CI runs the policy authors' tables through this test."""
    result = run("test", policy_dir)
    assert result.exit_code == 0, result.output
    passed, failed = result.stdout.splitlines()[-1].split(", ")
    assert failed == "0 failed"
    assert int(passed.split()[0]) >= 100
    assert all(": ok " in line for line in result.stdout.splitlines()[:-1])


def test_shipped_tables_cover_every_role_both_ways(policy_dir: Path) -> None:
    scenario = load_scenario(policy_dir / "tests" / "default.yaml")
    engine = PolicyEngine.from_directory(policy_dir)
    for role in engine.roles:
        holders = {
            scenario.user_name(a.user_id) for a in scenario.assignments if a.role == role and a.expires_at is None
        }
        outcomes = {case.allowed for case in scenario.cases if case.subject in holders}
        assert outcomes == {True, False}, role


def test_a_wrong_case_fails_with_its_line(copy: Path) -> None:
    [line] = append(copy, "tests/default.yaml", "  - [member, RESOURCE.UPDATE, vm1, allow]")
    result = run("test", copy, "--quiet")
    assert result.exit_code == 1
    table = copy / "tests" / "default.yaml"
    assert result.stdout.splitlines()[0] == (
        f"{table}:{line}: FAIL member RESOURCE.UPDATE vm1: expected allow, got deny (role): "
        "no role held (PROJECT.MEMBER) grants RESOURCE.UPDATE"
    )
    assert result.stdout.splitlines()[-1].endswith(", 1 failed")


def test_a_wrong_clause_fails(copy: Path) -> None:
    [line] = append(copy, "tests/default.yaml", "  - [alice-ro, RESOURCE.LIST, acme, deny, role]")
    result = run("test", copy, "-q")
    assert result.exit_code == 1
    assert (
        f"default.yaml:{line}: FAIL alice-ro RESOURCE.LIST acme: expected deny (role), got deny (token-binding)"
        in result.stdout
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  - [mallory, RESOURCE.LIST, vm1, allow]", "unknown user or token 'mallory'"),
        ("  - [alice, RESOURCE.LIST, atlantis, allow]", "unknown entity 'atlantis' (expect clause unknown-entity"),
        ("  - [alice, RESOURCE.LIST, vm1, maybe]", "expect must be allow or deny"),
    ],
)
def test_a_broken_case_is_located(copy: Path, line: str, message: str) -> None:
    [number] = append(copy, "tests/default.yaml", line)
    result = run("test", copy)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{copy / 'tests' / 'default.yaml'}:{number}: {message}")


def test_a_world_that_does_not_fit_the_rules_is_located(copy: Path) -> None:
    table = copy / "tests" / "default.yaml"
    text = table.read_text()
    table.write_text(
        text.replace(
            "{user: mgr, role: CUSTOMER.MANAGER, entity: acme}", "{user: mgr, role: CUSTOMER.MANAGER, entity: apollo}"
        )
    )
    line = next(n for n, row in enumerate(table.read_text().splitlines(), 1) if "user: mgr," in row)
    result = run("test", copy)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{table}:{line}: CUSTOMER.MANAGER is held on a customer\n")


def test_no_tables_is_an_error(copy: Path) -> None:
    shutil.rmtree(copy / "tests")
    result = run("test", copy)
    assert result.exit_code == 1
    assert "no decision tables" in result.output


# --- explain (scenario) --------------------------------------------------------------------------------------


def test_explain_a_named_case(policy_dir: Path) -> None:
    result = run(
        "explain",
        "--scenario",
        policy_dir / "tests" / "default.yaml",
        "--case",
        "owner-terminates-below",
        "--policy-dir",
        policy_dir,
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith("expects allow (role)")
    assert lines[1] == "ALLOW  alice  RESOURCE.TERMINATE  on vm1 (resource)"
    assert "  ancestors: vm1 (resource) <- apollo (project) <- acme (customer)" in lines
    assert any(
        line.startswith("    on acme (customer): CUSTOMER.OWNER") and "[policies/roles.csv:31]  <- decided" in line
        for line in lines
    )
    assert lines[-2:] == [
        "  clause:    role",
        "  reason:    CUSTOMER.OWNER held on customer acme (assignment alice:CUSTOMER.OWNER@acme) "
        "grants RESOURCE.TERMINATE [policies/roles.csv:31]",
    ]


def test_explain_a_token_denied_upwards(policy_dir: Path) -> None:
    result = run(
        "explain",
        "--scenario",
        policy_dir / "tests" / "default.yaml",
        "--policy-dir",
        policy_dir,
        "--token",
        "alice-ro",
        "RESOURCE.LIST",
        "acme",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:3] == [
        "DENY  alice via token alice-ro  RESOURCE.LIST  on acme (customer)",
        "  subject:   alice (user 1)",
        "  token:     scopes RESOURCE.LIST; bound to project apollo",
    ]
    assert "  clause:    token-binding" in result.stdout.splitlines()


def test_explain_shows_expired_assignments(policy_dir: Path) -> None:
    result = run(
        "explain",
        "--scenario",
        policy_dir / "tests" / "default.yaml",
        "--policy-dir",
        policy_dir,
        "--case",
        "expired-role",
    )
    assert (
        "PROJECT.MANAGER (assignment carol-expired, until 2030-01-01 11:00) expired: counts for nothing"
        in result.stdout
    )


@pytest.mark.parametrize(
    "args",
    [["RESOURCE.LIST", "vm1"], ["--user", "a", "--token", "b", "RESOURCE.LIST"], ["--case", "1"]],
)
def test_explain_usage_errors(args: list[str]) -> None:
    result = run("explain", *args)
    assert result.exit_code == 2


# --- matrix --------------------------------------------------------------------------------------------------


def test_matrix_markdown(policy_dir: Path) -> None:
    result = run("matrix", policy_dir)
    assert result.exit_code == 0
    out = result.stdout
    assert "- project: under customer\n" in out
    assert "- PROJECT.MANAGER: held on project, applies to project, resource\n" in out
    header = next(line for line in out.splitlines() if line.startswith("| permission"))
    assert header.startswith("| permission | delegation | bind types | CUSTOMER.OWNER (customer) | CUSTOMER.MANAGER")
    assert "| PROJECT.UPDATE | token | customer project | ✓ |   |   | ✓ |   |   |   |\n" in out
    assert "| SERVICE_ACCOUNT.MANAGE | never | - | ✓ |   |   | ✓ |   |   |   |\n" in out


def test_matrix_csv(policy_dir: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(run("matrix", "--format", "csv", policy_dir).stdout)))
    by_name = {row["permission"]: row for row in rows}
    assert by_name["ORDER.APPROVE"]["OFFERING.MANAGER (offering)"] == "x"
    assert by_name["ORDER.APPROVE"]["PROJECT.ADMIN (project)"] == ""
    assert by_name["STAFF.ACCESS"]["delegation"] == "staff"
    assert by_name["STAFF.ACCESS"]["bind types"] == "-"
    assert len(rows) == 34


def test_matrix_html(policy_dir: Path) -> None:
    out = run("matrix", "--format", "html", policy_dir).stdout
    assert out.startswith("<!DOCTYPE html>")
    assert "<th>OFFERING.MANAGER (offering)</th>" in out
    assert "<li>offering: under customer</li>" in out
    assert "<tr><td>RESOURCE.LIST</td><td>token</td><td>customer project resource</td><td>✓</td>" in out


def test_matrix_json_is_the_api_shape(policy_dir: Path) -> None:
    matrix = msgspec.json.decode(run("matrix", "--format", "json", policy_dir).stdout, type=PolicyMatrix)
    assert matrix == build_matrix(PolicyEngine.from_directory(policy_dir).rules)
    owner = next(role for role in matrix.roles if role.name == "CUSTOMER.OWNER")
    assert owner.applies_to == ["customer", "project", "resource", "offering"]


def test_matrix_of_a_broken_policy_points_at_check(copy: Path) -> None:
    append(copy, "roles.csv", "g, NOBODY.ROLE, PROJECT.LIST")
    result = run("matrix", copy)
    assert result.exit_code == 1
    assert "unknown role NOBODY.ROLE" in result.output
    assert "policy check" in result.output


# --- diff ----------------------------------------------------------------------------------------------------


def test_diff_of_identical_policies_is_empty(policy_dir: Path, copy: Path) -> None:
    append(copy, "roles.csv", "# a comment changes nothing")
    result = run("diff", "--exit-code", policy_dir, copy)
    assert (result.exit_code, result.output) == (0, "")


def test_diff_shows_exactly_one_gain(policy_dir: Path, copy: Path) -> None:
    append(copy, "roles.csv", "g, CUSTOMER.SUPPORT, RESOURCE.UPDATE")
    result = run("diff", policy_dir, copy)
    assert (result.exit_code, result.stdout) == (0, "+ CUSTOMER.SUPPORT (held on customer) gains RESOURCE.UPDATE\n")
    assert run("diff", "--exit-code", policy_dir, copy).exit_code == 1


def test_diff_reports_every_kind_of_change(policy_dir: Path, copy: Path) -> None:
    roles = copy / "roles.csv"
    roles.write_text(
        roles.read_text()
        .replace("g, PROJECT.MEMBER, ORDER.LIST\n", "")
        .replace("p2, OFFERING.MANAGER, offering,", "p2, OFFERING.MANAGER, customer,")
    )
    perms = copy / "permissions.csv"
    perms.write_text(
        perms.read_text()
        .replace("p3, ORDER.CANCEL, entity, token,", "p3, ORDER.CANCEL, entity, staff,")
        .replace("p4, ORDER.LIST, offering\n", "")
    )
    append(copy, "entities.csv", "p5, volume, resource")
    append(copy, "permissions.csv", "p3, VOLUME.ATTACH, entity, token, Attach a volume", "p4, VOLUME.ATTACH, volume")
    append(copy, "roles.csv", "p2, PROJECT.AUDITOR, project, Audits a project", "g, PROJECT.AUDITOR, RESOURCE.LIST")
    assert run("diff", policy_dir, copy).stdout.splitlines() == [
        "+ entity type volume (under resource)",
        "+ permission VOLUME.ATTACH (entity, delegation token, binds to volume)",
        "~ permission ORDER.LIST: bind types -offering",
        "~ permission ORDER.CANCEL: delegation token -> staff",
        "+ role PROJECT.AUDITOR (held on project) grants RESOURCE.LIST",
        "- PROJECT.MEMBER (held on project) loses ORDER.LIST",
        "~ role OFFERING.MANAGER: held on offering -> customer",
    ]
    reverse = run("diff", copy, policy_dir).stdout.splitlines()
    assert "- role PROJECT.AUDITOR (held on project)" in reverse
    assert "- entity type volume" in reverse


# --- entry points --------------------------------------------------------------------------------------------


def test_tokengate_policy_runs_without_building_the_app(
    copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy broken enough to stop the service can still be checked with the ``tokengate`` script."""
    from service import cli

    [line] = append(copy, "roles.csv", "g, NOBODY.ROLE, PROJECT.LIST")
    monkeypatch.setattr(sys, "argv", ["tokengate", "policy", "check", str(copy)])
    monkeypatch.setenv("TOKENGATE_POLICY_DIR", str(copy))
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    assert (
        capsys.readouterr().out
        == f"{copy / 'roles.csv'}:{line}: unknown role NOBODY.ROLE (declare it with a p2 line)\n"
    )


def test_default_directory_comes_from_the_settings(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENGATE_POLICY_DIR", str(copy))
    append(copy, "roles.csv", "p2, PROJECT.AUDITOR, project, Audits a project")
    result = run("check")
    assert result.exit_code == 1
    assert str(copy / "roles.csv") in result.stdout
