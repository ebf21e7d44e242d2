"""``tokengate run`` as an operator starts it: a real supervisor and its workers on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from service.runtime import Runtime
from tests.support.app import make_settings
from tests.support.factories import grant, make_entity, user_with_key

SECRET = "serving-secret-" + "s" * 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


class Served:
    """``tokengate run --workers N`` in a subprocess, its standard error in ``log``."""

    def __init__(self, url: str, tmp: Path, workers: int, **env: str) -> None:
        self.port = free_port()
        self.workers = workers
        self.env = {
            **os.environ,
            "TOKENGATE_CONFIG": str(tmp / "absent.toml"),
            "TOKENGATE_DATABASE__URL": url,
            "TOKENGATE_SECURITY__SECRET": SECRET,
            "TOKENGATE_TOKENS__USAGE_FLUSH_SECONDS": "3600",  # only the shutdown flush writes usage
            "TOKENGATE_LOG__FORMAT": "json",
            **env,
        }
        self.log = tmp / "served.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-c", "from service.cli import main; main()", "run", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--workers", str(self.workers)], cwd=self.log.parent, env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200 and self._all_workers_up():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("server did not start: " + self.log.read_text()[-3000:])

    def _all_workers_up(self) -> bool:
        return self.log.read_text().count("Application startup complete.") >= self.workers

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM to the supervisor only; its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill_all(self) -> None:
        """Clean up after a failed test: the supervisor and anything left below it."""
        if self.process is None or self.process.poll() is not None:
            return
        for pid in descendants(self.process.pid):
            os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()

    def lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]


async def owner_with_pat_rights(url: str, tmp: Path) -> str:
    """A customer owner (who may delegate PROJECT.UPDATE); returns their legacy key."""
    runtime = Runtime.build(make_settings(url, tmp, TOKENGATE_SECURITY__SECRET=SECRET))
    try:
        owner, key = await user_with_key(runtime, "operator")
        await grant(runtime, owner, "CUSTOMER.OWNER", await make_entity(runtime, "customer", "ACME"))
        return key
    finally:
        await runtime.alchemy.get_engine().dispose()


def create_pat(client: httpx.Client, key: str) -> dict[str, str]:
    expires = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    response = client.post(
        "/api/personal-access-tokens/",
        headers={"Authorization": f"Token {key}"},
        json={"name": "scraper", "scopes": ["PROJECT.UPDATE"], "expires_at": expires},
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body
