"""Prometheus metrics (``prometheus-client``), served at ``/metrics`` to a scraper that sends the metrics token.

Under ``tokengate run`` every worker writes its values to files in one directory (the client's multiprocess mode:
``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor), and a scrape answered by any worker sums them over all
workers.

Counts made on the request path (responses, decisions, verifications) are not ``inc()``-ed where they happen: that
takes a lock and two checks, about 0.9 µs, against 0.18 µs for adding one to a dict entry, and an authenticated
check counts three times. They wait in ``_pending``, keyed by the labelled counter (bound once per label set and
kept), and :func:`flush_counts` adds them up: before every scrape this worker answers, every
``COUNTS_FLUSH_SECONDS`` (the ``metrics-flush`` background task, so a scrape answered by another worker is at most
that late) and when the worker stops.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from litestar.types import Message, Scope

    from service.policy.facts import Decision

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
COUNTS_FLUSH_SECONDS = 1.0
UNMATCHED_ROUTE = "(unmatched)"

REQUESTS = Counter(
    "tokengate_http_requests", "HTTP responses by route template, method and status.", ["route", "method", "status"]
)
DECISIONS = Counter("tokengate_decisions", "Policy decisions by deciding clause and result.", ["clause", "result"])
VERIFICATION_CACHE = Counter(
    "tokengate_verification_cache",
    "Authenticated requests answered as a repeat (hit) or sent to full verification (miss).",
    ["result"],
)
VERIFICATIONS = Counter(
    "tokengate_verifications", "Full token verifications by credential kind and result.", ["kind", "result"]
)
BACKGROUND_FAILURES = Counter(
    "tokengate_background_failures", "Failed runs of background work (usage-flush, fact-watch, …).", ["task"]
)
BACKGROUND_LAST_SUCCESS = Gauge(
    "tokengate_background_last_success_timestamp_seconds",
    "Unix time of the last successful run of background work, the oldest over the workers (lag: time() - this).",
    ["task"],
    multiprocess_mode="livemin",
)
NOTIFICATION_LAG = Histogram(
    "tokengate_notification_lag_seconds",
    "Time from another worker's NOTIFY to its arrival here.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)
POLICY_GENERATION = Gauge(
    "tokengate_policy_generation",
    "Changes of rules or facts applied by each worker's policy engine (one series per worker pid).",
    multiprocess_mode="liveall",
)
POLICY_RELOAD_FAILURES = Counter("tokengate_policy_reload_failures", "Policy reloads refused (old rules kept).")

_CACHE_HIT, _CACHE_MISS = VERIFICATION_CACHE.labels("hit"), VERIFICATION_CACHE.labels("miss")
_decision_counters: dict[tuple[str, bool], Counter] = {}
_request_counters: dict[tuple[str | None, str, int], Counter] = {}


class _Pending:
    """Counts not yet added to their counters (see :func:`flush_counts`)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[Counter, int] = {}

    def add(self, counter: Counter) -> None:
        """One more of ``counter``.

        The dict is read once: a flush swapping it in between loses this count at worst (a decision counted in a
        worker thread, say), and never counts anything twice.
        """
        counts = self.counts
        counts[counter] = counts.get(counter, 0) + 1


_pending = _Pending()


def flush_counts() -> None:
    """Add every pending count to its counter."""
    counts, _pending.counts = _pending.counts, {}
    for counter, count in list(counts.items()):  # one C-level copy: a count added meanwhile cannot break the loop
        counter.inc(count)


async def flush_counts_periodically() -> None:
    """:func:`flush_counts`, as background work."""
    flush_counts()


def count_decision(decision: Decision) -> None:
    """One decision (called for every question the engine answers, memoised ones included)."""
    key = (decision.clause, decision.allowed)
    counter = _decision_counters.get(key)
    if counter is None:
        counter = _decision_counters[key] = DECISIONS.labels(decision.clause, "allow" if decision.allowed else "deny")
    _pending.add(counter)


def count_cache(hit: bool) -> None:
    """One authenticated request: answered as a repeat (``TokenVerifier.repeat``), or not."""
    counter = _CACHE_HIT if hit else _CACHE_MISS
    _pending.add(counter)


def count_verification(kind: str, admitted: bool) -> None:
    """One full verification of a ``kind`` credential (``pat``, ``token``, ``malformed``)."""
    counter = VERIFICATIONS.labels(kind, "ok" if admitted else "refused")
    _pending.add(counter)


async def count_response(message: Message, scope: Scope) -> None:
    """A ``before_send`` hook: counts each response by route template, method and status."""
    if message["type"] != "http.response.start":
        return
    key = (scope.get("path_template"), str(scope.get("method", "")), message["status"])
    counter = _request_counters.get(key)
    if counter is None:
        route = key[0] or UNMATCHED_ROUTE
        counter = _request_counters[key] = REQUESTS.labels(route, key[1], str(key[2]))
    _pending.add(counter)


def background_succeeded(task: str) -> None:
    """A background task's run went through."""
    BACKGROUND_LAST_SUCCESS.labels(task).set(time.time())


def background_failed(task: str) -> None:
    """A background task's run failed."""
    BACKGROUND_FAILURES.labels(task).inc()


def notification_arrived(sent_at: float) -> None:
    """A notification sent at ``sent_at`` (the sender's ``time.time()``) arrived now."""
    NOTIFICATION_LAG.observe(max(0.0, time.time() - sent_at))


def scrape() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics, and its content type."""
    flush_counts()
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def scraper_allowed(expected: str, authorization: str | None) -> bool:
    """Whether ``authorization`` is ``Bearer <expected>`` (constant-time); never with an empty ``expected``."""
    if not expected or authorization is None:
        return False
    return hmac.compare_digest(authorization.encode(), f"Bearer {expected}".encode())


def worker_exited(pid: int) -> None:
    """Forget a stopped worker's live gauges (the supervisor calls this)."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
