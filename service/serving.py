"""Production serving: one supervisor process and N uvicorn workers, each on its own ``SO_REUSEPORT`` socket.

The supervisor is the one process a service manager (systemd, Docker) knows. It binds one listening socket per
worker on the same address with ``SO_REUSEPORT``, so the kernel spreads connections across the workers by hash;
``uvicorn --workers`` shares one socket instead, and its workers took very uneven shares of a load generator's
keep-alive connections (``bench/serving.py`` measures both). On SIGTERM or SIGINT the supervisor asks every worker
to stop (SIGTERM: uvicorn finishes the requests in flight, then the app's shutdown flushes token usage), waits for
them and exits; SIGHUP is passed on to every worker (policy reload). A worker that dies is started again; one that
dies within ``STARTUP_SECONDS`` of its start is a start-up failure, and the supervisor stops and exits with 1.
Workers ask the kernel to send them SIGTERM if the supervisor itself dies, so no worker outlives it.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from service.config import load_settings
from service.metrics import MULTIPROCESS_DIR_ENV, worker_exited

logger = logging.getLogger("tokengate.serving")

APP = "service.app:create_app"
STARTUP_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServeOptions:
    """Where and how to serve."""

    host: str
    port: int
    workers: int
    graceful_seconds: float


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT``, so each worker can have its own on the same port."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent (the supervisor) exits (Linux only)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run_worker(sock: socket.socket) -> None:
    """One worker (``python -m service.serving FD``): uvicorn serving the app on ``sock`` until SIGTERM/SIGINT."""
    import uvicorn

    from service.logs import configure_logging

    _die_with_parent()
    settings = load_settings()
    configure_logging(settings.log)
    config = uvicorn.Config(
        APP,
        factory=True,
        lifespan="on",
        proxy_headers=False,  # the app decides the client address itself (service.security.client_ip)
        server_header=False,
        access_log=False,  # the app writes the access log (service.logs.AccessLog), without query strings
        log_config=None,  # keep the logging configured above
        timeout_graceful_shutdown=int(settings.server.graceful_seconds),
    )
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Starts the workers, keeps them running, and stops them all on SIGTERM or SIGINT."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.sockets = [bind_socket(options.host, options.port) for _ in range(options.workers)]
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * options.workers
        self.started_at = [0.0] * options.workers
        self.stopping = threading.Event()
        self.failed = False

    def _start(self, index: int) -> None:
        fd = self.sockets[index].fileno()
        command = [sys.executable, "-m", "service.serving", str(fd)]  # this interpreter, this module
        self.workers[index] = subprocess.Popen(command, pass_fds=[fd])  # noqa: S603
        self.started_at[index] = time.monotonic()

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        self.stopping.set()

    def _on_sighup(self, _signum: int, _frame: Any) -> None:
        for process in self.workers:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGHUP)

    def run(self) -> int:
        """Serve until a stop signal (exit status 0) or a worker that cannot start (1)."""
        with tempfile.TemporaryDirectory(prefix="tokengate-metrics-") as metrics_dir:
            os.environ.setdefault(MULTIPROCESS_DIR_ENV, metrics_dir)  # the workers' metrics, summed at each scrape
            return self._serve()

    def _serve(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_sighup)
        for index in range(self.options.workers):
            self._start(index)
        logger.info(
            "serving on %s:%s with %d workers (supervisor pid %d)",
            self.options.host,
            self.options.port,
            self.options.workers,
            os.getpid(),
        )
        while not self.stopping.wait(0.2):
            self._replace_dead_workers()
        self._stop_all()
        return 1 if self.failed else 0

    def _replace_dead_workers(self) -> None:
        for index, process in enumerate(self.workers):
            if process is None or process.poll() is None:
                continue
            worker_exited(process.pid)
            if time.monotonic() - self.started_at[index] < STARTUP_SECONDS:
                logger.error("worker %d exited with %s while starting; stopping", index, process.returncode)
                self.failed = True
                self.stopping.set()
                return
            logger.warning("worker %d exited with %s; starting it again", index, process.returncode)
            self._start(index)

    def _stop_all(self) -> None:
        alive = [process for process in self.workers if process is not None and process.poll() is None]
        for process in alive:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.options.graceful_seconds + STARTUP_SECONDS
        for process in alive:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("worker pid %s did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
        for sock in self.sockets:
            sock.close()
        logger.info("stopped")


def serve(options: ServeOptions) -> int:
    """Serve the app with ``options.workers`` worker processes; returns the exit status."""
    return Supervisor(options).run()


if __name__ == "__main__":
    run_worker(socket.socket(fileno=int(sys.argv[1])))
