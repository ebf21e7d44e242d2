"""Reload the rules without a restart: ``kill -HUP <pid>``.

A reload that fails keeps the rules in force and logs the problem as ``file:line: message``. One that succeeds is
announced to the other workers, which reload their own policy directory (``Runtime.reload_policy``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from service.metrics import POLICY_RELOAD_FAILURES
from service.policy.engine import PolicyEngine
from service.policy.errors import PolicyError

logger = logging.getLogger("tokengate.policy")


def reload_policy(engine: PolicyEngine, directory: Path) -> bool:
    """Swap in the rules of ``directory``; on a problem keep the old ones.

    Returns:
        Whether the new rules are in force.
    """
    try:
        engine.reload(directory)
    except PolicyError as exc:
        POLICY_RELOAD_FAILURES.inc()
        logger.error("%s (policy reload failed: the previous rules stay in force)", exc)
        return False
    logger.info("policy reloaded from %s", directory)
    return True


def install_sighup_reload(reload: Callable[[], Coroutine[Any, Any, object]]) -> Callable[[], None]:
    """Run ``reload`` whenever the process receives SIGHUP; call from the app's lifespan.

    Returns:
        A function that removes the handler again (call it when the lifespan ends).
    """
    loop = asyncio.get_running_loop()
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None:  # Windows
        return lambda: None
    running: set[asyncio.Task[object]] = set()  # the loop keeps only weak references to tasks

    def on_signal() -> None:
        task = loop.create_task(reload())
        running.add(task)
        task.add_done_callback(running.discard)

    try:
        loop.add_signal_handler(sighup, on_signal)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or a loop without signals
        logger.warning("cannot reload the policy on SIGHUP in this process: restart to change the rules")
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(sighup)

    return remove
