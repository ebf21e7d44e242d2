"""Password-login throttling per username and per client address (in memory, per worker)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

_PRUNE_ABOVE = 10_000


@dataclass(slots=True)
class _Window:
    failures: int
    started: float


class LoginThrottle:
    """Fixed-window failure counters: too many failures for a username or an address give 429 until the window ends."""

    def __init__(self, max_per_username: int, max_per_ip: int, window_seconds: int) -> None:
        self.limits = {"user": max_per_username, "ip": max_per_ip}
        self.window = window_seconds
        self._windows: dict[tuple[str, str], _Window] = {}

    def _keys(self, username: str, ip: str) -> list[tuple[str, str]]:
        return [("user", username.lower()), ("ip", ip)]

    def retry_after(self, username: str, ip: str) -> int | None:
        """Seconds until another attempt is allowed, or None when it is allowed now."""
        now = time.monotonic()
        waits = []
        for key in self._keys(username, ip):
            window = self._windows.get(key)
            if window and now - window.started < self.window and window.failures >= self.limits[key[0]]:
                waits.append(max(1, math.ceil(window.started + self.window - now)))
        return max(waits) if waits else None

    def failed(self, username: str, ip: str) -> None:
        """Count one failed attempt."""
        now = time.monotonic()
        if len(self._windows) > _PRUNE_ABOVE:
            self._windows = {k: w for k, w in self._windows.items() if now - w.started < self.window}
        for key in self._keys(username, ip):
            window = self._windows.get(key)
            if window is None or now - window.started >= self.window:
                self._windows[key] = _Window(1, now)
            else:
                window.failures += 1

    def succeeded(self, username: str) -> None:
        """A successful login clears the username's counter (the address's stays)."""
        self._windows.pop(("user", username.lower()), None)
