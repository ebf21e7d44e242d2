"""Decision latency of the policy engine at tree depths 1, 4 and 8, cold (no memo: Casbin's answer) and warm;
the engine's load time and resident memory at scale.

Run as ``python -m bench.decisions`` or ``python bench/decisions.py``.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the `service` package importable
    sys.path.insert(0, str(ROOT))

from service.policy import AssignmentFact, Binding, EntityFact, PolicyEngine, Subject, TokenLimits  # noqa: E402

DEEP_POLICY = ROOT / "tests" / "unit" / "policy" / "deep_policy"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
ORGS = 200  # each org: a chain of 8 folders; the facts are there so lookups are not trivially small


def build(memo_size: int) -> PolicyEngine:
    """An engine on the folder policy: ORGS orgs, each with a chain f1..f8, an admin per org, a viewer at f1."""
    engine = PolicyEngine.from_directory(DEEP_POLICY, memo_size=memo_size)
    entities, assignments = [], []
    for org in range(ORGS):
        entities.append(EntityFact(f"o{org}", "org", None))
        parent = f"o{org}"
        for level in range(1, 9):
            entities.append(EntityFact(f"o{org}f{level}", "folder", parent))
            parent = f"o{org}f{level}"
        assignments.append(AssignmentFact(f"admin{org}", org, "ORG.ADMIN", f"o{org}", None))
        expiry = NOW.replace(year=2031)  # an expiry keeps the expiry window in play
        assignments.append(AssignmentFact(f"viewer{org}", 10_000 + org, "FOLDER.VIEWER", f"o{org}f1", expiry))
    engine.replace_facts(entities, assignments)
    return engine


def target(depth: int) -> str:
    """The entity at ``depth`` (1 = the org itself) in org 0."""
    return "o0" if depth == 1 else f"o0f{depth - 1}"


def measure(engine: PolicyEngine, subject: Subject, permission: str, entity: str, expected: bool) -> float:
    """Return µs per decision over a fixed wall-clock budget."""
    assert engine.decide(subject, permission, entity, NOW).allowed is expected
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < 0.3:
        for _ in range(200):
            engine.decide(subject, permission, entity, NOW)
        runs += 200
    return elapsed / runs * 1e6


def scenarios() -> list[tuple[int, str, str, float]]:
    """Measure every scenario: ``(depth, "cold"|"warm", label, µs per decision)``."""
    engines = {"cold": build(memo_size=0), "warm": build(memo_size=65_536)}
    admin, stranger = Subject(0, False), Subject(5, False)
    rows: list[tuple[int, str, str, float]] = []
    for depth in (1, 4, 8):
        near_root = target(min(depth, 2))
        binding = Binding("org" if near_root == "o0" else "folder", near_root)
        bound = Subject(0, False, TokenLimits(frozenset({"FOLDER.READ"}), frozenset({binding})))
        cases = [
            ("allow, role held at the root", admin, True),
            ("allow, PAT bound near the root", bound, True),
            ("deny, no role anywhere on the chain", stranger, False),
        ]
        for memo, engine in engines.items():
            for label, subject, expected in cases:
                rows.append((depth, memo, label, measure(engine, subject, "FOLDER.READ", target(depth), expected)))
    viewer = Subject(10_000, False)
    rows.append(
        (
            8,
            "cold",
            "deny, role held lacks permission",
            measure(engines["cold"], viewer, "FOLDER.WRITE", target(8), False),
        )
    )
    return rows


def load(entities: int, assignments: int) -> tuple[float, float]:
    """In a fresh process: seconds to load ``entities`` (chains of 8 folders under orgs) and ``assignments``
    into a new engine, and the resident memory that added, in MiB."""
    code = f"from bench.decisions import _load_here; _load_here({entities}, {assignments})"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    seconds, mib = out.split()
    return float(seconds), float(mib)


def _load_here(entities: int, assignments: int) -> None:
    engine = PolicyEngine.from_directory(DEEP_POLICY)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    facts = []
    for index in range(entities):
        level = index % 9
        facts.append(
            EntityFact(f"e{index}", "org" if level == 0 else "folder", None if level == 0 else f"e{index - 1}")
        )
    held = [AssignmentFact(f"a{i}", i, "FOLDER.VIEWER", f"e{(i * 9 + 1) % entities}", None) for i in range(assignments)]
    engine.replace_facts(facts, held)
    assert engine.decide(Subject(0, False), "FOLDER.READ", f"e{min(8, entities - 1)}").allowed
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{seconds:.2f} {(after - before) / 1024:.0f}")


def main() -> None:
    """Print one line per scenario."""
    print(f"{'scenario':<46}{'µs/decision':>12}{'decisions/s':>14}")
    for depth, memo, label, us in scenarios():
        print(f"{f'depth {depth} {memo:<4} {label}':<46}{us:>12.2f}{1e6 / us:>14,.0f}")
    seconds, mib = load(1_000_000, 100_000)
    print(f"load 1,000,000 entities + 100,000 assignments: {seconds:.1f} s, {mib:.0f} MiB resident")


if __name__ == "__main__":
    main()
