"""``python -m bench.serving``: the production serving choice, measured — three ways to run 2 workers.

- ``tokengate run --workers 2``: a supervisor and 2 uvicorn workers, each on its own ``SO_REUSEPORT`` socket;
- ``uvicorn --workers 2``: uvicorn's own supervisor, the workers sharing one listening socket;
- ``granian --workers 2``: granian's Rust server, its own supervisor.

Each serves ``GET /health`` (the server's share of a request) and the PAT-authenticated ``POST /api/authz/check/``
(what the service is for) on SQLite, with the access log off, in interleaved rounds; the figure is requests per
second per round (its spread shows how evenly the kernel gave the load generator's connections to the workers).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import loadgen
from bench.loadgen import Request
from bench.world import ROOT, prepare

PORT = 18790
SERVERS = {
    "tokengate run (SO_REUSEPORT)": [sys.executable, "-c", "from service.cli import main; main()", "run"],
    "uvicorn --workers": [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--no-access-log"],
    "granian --workers": [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--no-ws",
        "service.app:create_app",
    ],
}


def start(command: list[str], workers: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start one server on PORT and wait until it answers."""
    flags = ["--port", str(PORT), "--workers", str(workers)]
    if command[-1] != "run":
        flags += ["--host", "127.0.0.1", "--log-level", "warning"]
    with log.open("ab") as out:
        process = subprocess.Popen([*command, *flags], cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/health", timeout=1).status_code == 200:
                time.sleep(2)  # let every worker finish starting
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"{command} did not start: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    """Measure each server in ``--rounds`` interleaved rounds of ``--seconds``."""
    parser = argparse.ArgumentParser(prog="python -m bench.serving")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tokengate-serving-"))
    world = prepare("sqlite", f"sqlite+aiosqlite:///{workdir / 'serving.db'}")
    env = {**os.environ, **world.env, "TOKENGATE_LOG__ACCESS": "false", "TOKENGATE_LOG__LEVEL": "warning"}
    body = json.dumps({"permission": "RESOURCE.UPDATE", "entity": {"type": "resource", "uuid": world.resource}})
    requests = {
        "GET /health": Request("GET", "/health", {}),
        "POST /api/authz/check/ (PAT)": Request(
            "POST",
            "/api/authz/check/",
            {"Authorization": f"Token {world.pat}", "Content-Type": "application/json"},
            body.encode(),
        ),
    }
    rounds = {(server, label): [] for server in SERVERS for label in requests}
    for _ in range(args.rounds):
        for server, command in SERVERS.items():
            process = start(command, args.workers, env, workdir / "server.log")
            try:
                for label, request in requests.items():
                    result = loadgen.run(PORT, request, args.seconds, args.connections)
                    assert result.errors == 0, (server, label, result)
                    rounds[server, label].append(result.rps)
            finally:
                stop(process)
    print(f"{args.workers} workers, {args.connections} connections, {args.seconds:g} s rounds")
    for (server, label), values in rounds.items():
        shown = "  ".join(f"{value:,.0f}" for value in values)
        print(f"  {server:30} {label:30} median {statistics.median(values):8,.0f} req/s   rounds: {shown}")


if __name__ == "__main__":
    main()
