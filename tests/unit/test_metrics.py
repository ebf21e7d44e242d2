"""Request-path counts wait in memory and are added to their counters before a scrape, exactly once.

Only the service's own policy engine counts decisions.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from service.metrics import count_cache, flush_counts, scrape
from service.policy import PolicyEngine, Subject
from service.runtime import Runtime
from tests.support.app import make_settings

HITS = re.compile(rb'^tokengate_verification_cache_total\{result="hit"\} (\S+)$', re.MULTILINE)


def _hits() -> float:
    match = HITS.search(scrape()[0])
    return float(match.group(1)) if match else 0.0


def test_a_scrape_shows_the_counts_made_just_before_it() -> None:
    before = _hits()
    for _ in range(3):
        count_cache(True)
    assert _hits() == before + 3


def test_pending_counts_are_added_once_however_often_they_are_flushed() -> None:
    before = _hits()
    count_cache(True)
    flush_counts()
    flush_counts()
    assert _hits() == before + 1


def test_counts_made_in_a_thread_during_flushes_are_never_counted_twice() -> None:
    before, made, flushes = _hits(), 50_000, 0
    worker = threading.Thread(target=lambda: [count_cache(True) for _ in range(made)])
    worker.start()
    while worker.is_alive():
        flush_counts()
        flushes += 1
    counted = _hits() - before
    assert made - flushes <= counted <= made  # a flush may lose the one count in flight, never add one


def _unknown_permission_denials() -> float:
    pattern = rb'^tokengate_decisions_total\{clause="unknown-permission",result="deny"\} (\S+)$'
    match = re.search(pattern, scrape()[0], re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_the_services_engine_counts_its_decisions_and_the_policy_tools_engines_do_not(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    service_engine = Runtime.build(settings).policy
    tool_engine = PolicyEngine.from_directory(Path(settings.policy_dir))  # as policy_tools build theirs
    before = _unknown_permission_denials()
    for engine in (service_engine, tool_engine, tool_engine):
        assert not engine.decide(Subject(1, False), "NO.SUCH_PERMISSION", None).allowed
    assert _unknown_permission_denials() == before + 1


def test_the_decision_memo_has_the_configured_size(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    assert Runtime.build(make_settings(url, tmp_path)).policy.memo_size == 65_536
    assert Runtime.build(make_settings(url, tmp_path, TOKENGATE_DECISION_MEMO_SIZE="1000")).policy.memo_size == 1000
