"""``tokengate policy``: lint, test, explain, print, compare and prove the rule files in ``policies/``.

Every command except ``explain --user/--token`` (which reads the database) works on the files alone: it needs no
database and imports nothing of the application beyond ``service.policy`` and ``service.policy_tools``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rich_click as click

from service.policy.errors import PolicyError
from service.policy.loader import load_rules
from service.policy_tools.diff import diff_matrices
from service.policy_tools.explain import explain
from service.policy_tools.invariants import assert_lines, broken_by, prove_directory
from service.policy_tools.lint import check_directory
from service.policy_tools.matrix import PolicyMatrix, build_matrix
from service.policy_tools.render import FORMATS, render
from service.policy_tools.scenario import load_scenario
from service.policy_tools.tables import run_table, table_files

DirectoryPath = click.Path(exists=True, file_okay=False, path_type=Path)


def configured_policy_dir() -> Path:
    """The ``policy_dir`` of the service's settings (``litestar.toml``, ``TOKENGATE_*``), else the shipped one."""
    from service.config import DEFAULT_POLICY_DIR, load_settings

    try:
        return Path(load_settings().policy_dir)
    except Exception:  # an unreadable configuration must not stop a policy author
        return DEFAULT_POLICY_DIR


def _directory_argument(required: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.argument("directory", required=required, type=DirectoryPath)


def _matrix_of(directory: Path) -> PolicyMatrix:
    try:
        return build_matrix(load_rules(directory))
    except PolicyError as exc:
        raise click.ClickException(f"{exc} (run: tokengate policy check {directory})") from exc


@click.group(name="policy")
def policy_group() -> None:
    """Check, test, explain, print and compare the authorisation policy."""


@policy_group.command(name="check")
@_directory_argument()
def check_command(directory: Path | None) -> None:
    """Report every problem of the policy in DIRECTORY as file:line: message (exit 1 if any)."""
    directory = directory or configured_policy_dir()
    problems = check_directory(directory)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {directory}", err=True)
        raise SystemExit(1)
    rules = load_rules(directory)
    counts = f"{len(rules.roles)} roles, {len(rules.permissions)} permissions, {len(rules.entity_types)} entity types"
    click.echo(f"{directory}: ok ({counts})")


@policy_group.command(name="test")
@_directory_argument()
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run only this table (repeatable); default: every DIRECTORY/tests/*.yaml.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print failures and the summary only.")
def test_command(directory: Path | None, tables: tuple[Path, ...], quiet: bool) -> None:
    """Run the decision tables of the policy in DIRECTORY; report each case as file:line (exit 1 on a failure)."""
    directory = directory or configured_policy_dir()
    files = list(tables) or table_files(directory)
    if not files:
        raise click.ClickException(f"no decision tables in {directory}/tests (*.yaml)")
    passed = failed = 0
    for file in files:
        try:
            results = run_table(file, directory)
        except PolicyError as exc:
            click.echo(str(exc))
            failed += 1
            continue
        for result in results:
            if not quiet or not result.passed:
                click.echo(result.describe())
            passed += result.passed
            failed += not result.passed
    click.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise SystemExit(1)


@policy_group.command(name="explain")
@click.argument("permission", required=False)
@click.argument("entity", required=False)
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ask in the world of this scenario file instead of the database.",
)
@click.option("--case", "case_key", help="With --scenario: explain the case with this name or on this line.")
@click.option("--user", help="The user (a username; with --scenario, a user of the scenario).")
@click.option("--token", help="A personal access token: its uuid (never its secret); with --scenario, a token name.")
@click.option("--policy-dir", type=DirectoryPath, help="With --scenario: the rules (default: the configured ones).")
def explain_command(
    permission: str | None,
    entity: str | None,
    scenario: Path | None,
    case_key: str | None,
    user: str | None,
    token: str | None,
    policy_dir: Path | None,
) -> None:
    """Decide PERMISSION on ENTITY (a uuid, or a scenario entity name) and print how it was decided.

    tokengate policy explain --scenario policies/tests/default.yaml --case owner-terminates-below

    tokengate policy explain --scenario policies/tests/default.yaml --token alice-ro RESOURCE.LIST acme

    tokengate policy explain --user alice PROJECT.UPDATE 0b6b3c1e-...

    tokengate policy explain --token 5f0c...-pat-uuid RESOURCE.LIST 0b6b3c1e-...
    """
    if case_key is None and (permission is None or (user is None) == (token is None)):
        raise click.UsageError("give PERMISSION [ENTITY] and exactly one of --user or --token (or --scenario --case)")
    if scenario is not None:
        lines = _explain_scenario(
            scenario, policy_dir or configured_policy_dir(), case_key, user or token, permission, entity
        )
    elif case_key is not None:
        raise click.UsageError("--case needs --scenario")
    else:
        lines = _explain_database(permission or "", entity, user, token)
    click.echo("\n".join(lines))


def _explain_scenario(
    path: Path, directory: Path, case_key: str | None, subject: str | None, permission: str | None, entity: str | None
) -> list[str]:
    try:
        world = load_scenario(path)
        engine = world.engine(directory)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    if case_key is not None:
        try:
            case = world.find_case(case_key)
        except KeyError:
            raise click.ClickException(f"{path}: no case named {case_key!r} or on line {case_key}") from None
        subject, permission, entity, now = case.subject, case.permission, case.entity, case.now
        expected = ("allow" if case.allowed else "deny") + (f" ({case.clause})" if case.clause else "")
        header, question = [f"{case.where}: expects {expected}"], case.question
    else:
        now, header, question = world.now, [], "allow"
    if subject not in world.users and subject not in world.tokens:
        raise click.ClickException(f"{path}: no user or token named {subject!r}")
    owner = world.tokens[subject][0] if subject in world.tokens else subject
    label = subject if owner == subject else f"{owner} via token {subject}"
    decision_subject = world.subject(subject)
    _, lines = explain(engine, decision_subject, permission or "", entity, now, question=question, subject_label=label)
    lines[1] = lines[1].replace(f"user {decision_subject.user_id}", f"{owner} (user {decision_subject.user_id})", 1)
    return [*header, *lines]


def _explain_database(permission: str, entity: str | None, user: str | None, token: str | None) -> list[str]:
    from service.config import load_settings
    from service.policy_tools.dbexplain import NotFoundError, explain_from_database
    from service.runtime import Runtime

    runtime = Runtime.build(load_settings())
    try:
        return runtime.run_once(
            lambda rt: explain_from_database(
                rt, permission, entity, datetime.now(UTC), username=user, token_uuid=token
            ),
        )
    except (NotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@policy_group.command(name="matrix")
@_directory_argument()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
def matrix_command(directory: Path | None, fmt: str) -> None:
    """Print every role against every permission, with bind types, delegation and the entity hierarchy."""
    click.echo(render(_matrix_of(directory or configured_policy_dir()), fmt), nl=False)


@policy_group.command(name="diff")
@click.argument("old", type=DirectoryPath)
@click.argument("new", type=DirectoryPath)
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are changes (like git diff --exit-code).")
def diff_command(old: Path, new: Path, exit_code: bool) -> None:
    """Print the effective change from the policy in OLD to the one in NEW, and the invariants of OLD it breaks."""
    lines = diff_matrices(_matrix_of(old), _matrix_of(new))
    try:
        lines += broken_by(old, new)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in lines:
        click.echo(line)
    if lines and exit_code:
        raise SystemExit(1)


@policy_group.command(name="assert")
@_directory_argument()
@click.option(
    "--invariants",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Prove the invariants of this file (default: DIRECTORY/invariants.yaml).",
)
@click.option(
    "--write", "write_dir", type=click.Path(file_okay=False, path_type=Path), help="Save counterexamples here."
)
def assert_command(directory: Path | None, invariants: Path | None, write_dir: Path | None) -> None:
    """Prove every invariant of the policy in DIRECTORY; print a counterexample scenario for each one that fails."""
    directory = directory or configured_policy_dir()
    start = time.perf_counter()
    try:
        outcomes = prove_directory(directory, invariants)
    except PolicyError as exc:
        click.echo(str(exc))
        raise SystemExit(1) from exc
    click.echo("\n".join(assert_lines(outcomes, time.perf_counter() - start, directory, write_dir)))
    if any(outcome.status != "proved" for outcome in outcomes):
        raise SystemExit(1)
