"""Decision latency of the policy engine at tree depths 1, 4 and 8, cold (no memo: Casbin's answer) and warm;
at scale, the engine's load time and resident memory, its decision rate with facts changing elsewhere against
the same without changes, and the memory of one memoised decision.

Times are the thread's CPU time (``time.thread_time``), so other processes on the machine do not count.

Run as ``python -m bench.decisions`` or ``python bench/decisions.py``.
"""

from __future__ import annotations

import gc
import json
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
    engine = PolicyEngine.from_directory(DEEP_POLICY, memo_size=memo_size, counted=True)
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
    runs, start = 0, time.thread_time()
    while (elapsed := time.thread_time() - start) < 0.3:
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


@dataclass(frozen=True)
class Scale:
    """The figures at scale (see :func:`at_scale`)."""

    load_seconds: float
    load_mib: float
    quiet_us: float  # µs of CPU per decision, nothing changing
    churn_us: float  # the same decisions, an entity registered and a role granted elsewhere per 100 (their cost out)
    change_us: float  # µs of CPU to register one of those entities and grant one of those roles
    removal_us: float  # the same decisions, one of those entities removed and one of those roles revoked per 100
    removal_change_us: float  # µs of CPU to remove one of those entities and revoke one of those roles
    new_target_us: float  # µs of CPU per question about a target not asked before, of a shape the memo knows
    changes: int  # entities registered (and roles granted) during the churn rounds
    memo_bytes: float  # memory one memoised decision takes, a full memo's worth measured at once


ASKERS = 5_000  # users asking, 4 questions each: 20,000 distinct questions, all within the default memo
ROUNDS = 20  # quiet and churn runs alternate, so a noisy moment on the machine hits both alike
ROUND_DECISIONS = 25_000


def at_scale(entities: int, assignments: int) -> Scale:
    """In a fresh process, on ``entities`` (chains of 8 folders under orgs) and ``assignments`` (a viewer each):

    - seconds to load them into a new engine, and the resident memory that added, in MiB;
    - µs per decision over many users and targets, with and without one entity registered (under a random
      folder) and one role granted (to a user who is not asking) per 100 decisions, and µs per such pair of
      changes (timed apart: their cost is the fact store's, not the memo's); the same with one of those entities
      (a leaf) removed and one of those roles revoked per 100 decisions;
    - µs per question of those users about the other folders of their org, asked for the first time (each one's
      shape already answered: ``service.policy.views``);
    - bytes per memoised decision: memory traced while a full memo of new questions is answered (their
      ancestor chains cached beforehand, as a warm engine has them).
    """
    code = f"from bench.decisions import _at_scale_here; _at_scale_here({entities}, {assignments})"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return Scale(**json.loads(out))


def _at_scale_here(entities: int, assignments: int) -> None:
    memo_size = 65_536
    engine = PolicyEngine.from_directory(DEEP_POLICY, memo_size, counted=True)
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
    load_seconds = time.perf_counter() - start
    load_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    del facts, held
    gc.collect()
    gc.freeze()  # a million facts stay for good: a full collection scanning them would land in one timed run

    rng = random.Random(20)
    orgs = entities // 9

    def questions(users: list[int]) -> list[tuple[Subject, str, str]]:
        """Four different questions per user: three folders of the user's org (allowed), one of another (denied)."""
        asked = []
        for user in users:
            subject, own = Subject(user, False), user % orgs
            targets = [own * 9 + level for level in rng.sample(range(1, 9), 3)]
            targets.append((own + 1 + rng.randrange(orgs - 1)) % orgs * 9 + rng.randrange(1, 9))
            asked.extend((subject, "FOLDER.READ", f"e{target}") for target in targets)
        rng.shuffle(asked)
        return asked

    askers = rng.sample(range(assignments), ASKERS)
    others = sorted(set(range(assignments)) - set(askers))
    asked = questions(askers)
    for question in asked:
        engine.decide(*question, NOW)
    pending = [
        (
            EntityFact(f"new{n}", "folder", f"e{rng.randrange(entities)}"),
            AssignmentFact(f"grant{n}", rng.choice(others), "FOLDER.VIEWER", f"e{rng.randrange(entities)}", None),
        )
        for n in range(ROUNDS * ROUND_DECISIONS // 100)
    ]

    blocks = [asked[start : start + 100] for start in range(0, len(asked), 100)]

    added: list[tuple[EntityFact, AssignmentFact]] = []

    def grow() -> None:
        entity, assignment = pending.pop()
        engine.put_entity(entity)
        engine.put_assignment(assignment)
        added.append((entity, assignment))

    def shrink() -> None:
        entity, assignment = added.pop()
        engine.remove_entity(entity.uuid)
        engine.remove_assignment(assignment.uuid)

    def run(change: Callable[[], None] | None) -> tuple[float, float]:
        """CPU seconds of one round's decisions, and of its changes (one ``change`` after every 100 decisions)."""
        changing = 0.0
        begin = time.thread_time()
        for index in range(ROUND_DECISIONS // 100):
            for question in blocks[index % len(blocks)]:
                engine.decide(*question, NOW)
            if change is not None:
                before = time.thread_time()
                change()
                changing += time.thread_time() - before
        return time.thread_time() - begin - changing, changing

    quiet = churned = changing = removing = removals = 0.0
    for _ in range(ROUNDS):
        quiet += run(None)[0]
        decisions, changes = run(grow)
        churned, changing = churned + decisions, changing + changes
        decisions, changes = run(shrink)
        removing, removals = removing + decisions, removals + changes

    asked_targets = {(subject.user_id, entity) for subject, _, entity in asked}
    new_targets = [
        (Subject(user, False), "FOLDER.READ", f"e{user % orgs * 9 + level}")
        for user in askers
        for level in range(1, 9)
        if (user, f"e{user % orgs * 9 + level}") not in asked_targets
    ]
    for _, _, entity in new_targets:
        engine.ancestors(entity)  # cache the chain, as a warm engine has it
    begin = time.thread_time()
    for question in new_targets:
        engine.decide(*question, NOW)
    new_target_us = (time.thread_time() - begin) / len(new_targets) * 1e6

    fresh = questions(others[: memo_size // 4])[: memo_size - 1]  # with the warm-up question below: a full memo
    for _, _, entity in fresh:
        engine.ancestors(entity)  # cache the chain, as answering the question would
    engine.reload(DEEP_POLICY)  # empties the memo
    engine.shape_admission = 1.0  # every answer memoised as asked: the memo fills with exactly these questions
    engine.decide(*asked[0], NOW)  # the new rules' first question builds their role closure
    tracemalloc.start()
    for question in fresh:
        engine.decide(*question, NOW)
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    asked_in_all, changed = ROUNDS * ROUND_DECISIONS, ROUNDS * ROUND_DECISIONS // 100
    figures = Scale(
        load_seconds=load_seconds,
        load_mib=load_mib,
        quiet_us=quiet / asked_in_all * 1e6,
        churn_us=churned / asked_in_all * 1e6,
        change_us=changing / changed * 1e6,
        removal_us=removing / asked_in_all * 1e6,
        removal_change_us=removals / changed * 1e6,
        new_target_us=new_target_us,
        changes=changed,
        memo_bytes=traced / len(fresh),
    )
    print(json.dumps(asdict(figures)))


def main() -> None:
    """Print one line per scenario."""
    print(f"{'scenario':<46}{'µs/decision':>12}{'decisions/s':>14}")
    for depth, memo, label, us in scenarios():
        print(f"{f'depth {depth} {memo:<4} {label}':<46}{us:>12.2f}{1e6 / us:>14,.0f}")
    scale = at_scale(1_000_000, 100_000)
    print(f"load 1,000,000 entities + 100,000 assignments: {scale.load_seconds:.1f} s, {scale.load_mib:.0f} MiB")
    print(f"{'many users, nothing changing':<46}{scale.quiet_us:>12.2f}{1e6 / scale.quiet_us:>14,.0f}")
    print(f"{'the same, 2 fact changes per 100 decisions':<46}{scale.churn_us:>12.2f}{1e6 / scale.churn_us:>14,.0f}")
    print(f"one entity registered and one role granted: {scale.change_us:.2f} µs")
    print(f"{'the same, 2 removals per 100 decisions':<46}{scale.removal_us:>12.2f}{1e6 / scale.removal_us:>14,.0f}")
    print(f"one entity removed and one role revoked: {scale.removal_change_us:.2f} µs")
    new = scale.new_target_us
    print(f"{'a new target, of a shape already answered':<46}{new:>12.2f}{1e6 / new:>14,.0f}")
    print(f"memoised decision: {scale.memo_bytes:.0f} bytes")


if __name__ == "__main__":
    main()
