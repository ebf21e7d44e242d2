"""Time to prove the shipped invariants (``policies/invariants.yaml``); the target is under 5 s for all of them.

Run as ``python -m bench.invariants`` or ``python bench/invariants.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the `service` package importable
    sys.path.insert(0, str(ROOT))

from service.policy.engine import PolicyEngine  # noqa: E402
from service.policy_tools.invariants import INVARIANTS_FILE, build_world, load_invariants, prove  # noqa: E402

POLICIES = ROOT / "policies"


def measure() -> list[tuple[str, str, int, float]]:
    """(invariant, status, decisions, seconds) per shipped invariant; the first row is building the world."""
    start = time.perf_counter()
    world = build_world(PolicyEngine.from_directory(POLICIES, memo_size=1 << 20))
    rows = [("(load the policy, build the world)", "", 0, time.perf_counter() - start)]
    for invariant in load_invariants(POLICIES / INVARIANTS_FILE):
        start = time.perf_counter()
        outcome = prove(world, invariant, POLICIES)
        rows.append((invariant.name, outcome.status, outcome.decisions, time.perf_counter() - start))
    return rows


def main() -> None:
    rows = measure()
    for name, status, decisions, seconds in rows:
        print(f"{name:<48}{status:>10}{decisions:>10,}{seconds * 1000:>10.0f} ms")
    total = sum(seconds for *_, seconds in rows)
    print(f"{'total':<68}{total * 1000:>10.0f} ms   target < 5000 ms   {'MET' if total < 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
