"""Request-path counts wait in memory and are added to their counters before a scrape, exactly once."""

from __future__ import annotations

import re
import threading

from service.metrics import count_cache, flush_counts, scrape

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
