"""``policy test``: run the decision tables kept next to the rules (``policies/tests/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.policy.facts import Decision
from service.policy_tools.explain import ask
from service.policy_tools.scenario import Case, load_scenario

TABLES_DIR = "tests"


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one case.

    Attributes:
        case: The case.
        decision: What the engine decided.
    """

    case: Case
    decision: Decision

    @property
    def passed(self) -> bool:
        """Whether the decision (and its clause, if pinned) is the expected one."""
        clause_ok = self.case.clause is None or self.case.clause == self.decision.clause
        return self.decision.allowed is self.case.allowed and clause_ok

    def describe(self) -> str:
        """``file:line: ok|FAIL subject permission entity -> outcome``, with the reason on failure."""
        case, decision = self.case, self.decision
        got = f"{'allow' if decision.allowed else 'deny'} ({decision.clause})"
        verdict = "ok  " if self.passed else "FAIL"
        asked = "" if case.question == "allow" else f"{case.question} "
        head = f"{case.where}: {verdict} {case.subject} {asked}{case.permission} {case.entity or '-'}"
        if self.passed:
            return f"{head} -> {got}"
        expected = f"{'allow' if case.allowed else 'deny'}{f' ({case.clause})' if case.clause else ''}"
        return f"{head}: expected {expected}, got {got}: {decision.reason}"


def table_files(directory: Path) -> list[Path]:
    """The decision tables of a policy directory, in name order."""
    tables = directory / TABLES_DIR
    return sorted([*tables.glob("*.yaml"), *tables.glob("*.yml")])


def run_table(path: Path, directory: Path) -> list[Result]:
    """Run every case of the table at ``path`` against the rules in ``directory``.

    Raises:
        PolicyError: The rules or the table are broken; located by file and line.
    """
    scenario = load_scenario(path)
    engine = scenario.engine(directory)
    return [
        Result(case, ask(engine, case.question, scenario.subject(case.subject), case.permission, case.entity, case.now))
        for case in scenario.cases
    ]
