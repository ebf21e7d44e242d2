"""``python -m bench``: tokengate's benchmarks, side by side in one run, written to ``bench/RESULTS.md``.

Everything runs on 127.0.0.1: fresh databases (SQLite; PostgreSQL too when 127.0.0.1:5432 answers — a throwaway
database, dropped after), the service as N uvicorn processes (uvloop + httptools) on ``SO_REUSEPORT`` sockets
(see ``bench/serve.py``), the Django REST framework + knox peer served the same way, and a load generator in a
separate process (wrk if installed, else the bounded Python generator in ``bench/loadgen.py``). Absolute numbers
are reported; the targets are ratios of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

from bench import loadgen
from bench.app import BARE_CHECK_PATH
from bench.loadgen import LoadResult, Request
from bench.world import ROOT, World, call, database, postgres_reachable, prepare, uvicorn_server

RESULTS = ROOT / "bench" / "RESULTS.md"


@dataclass
class Report:
    """Printed as it goes, and written to RESULTS.md at the end."""

    lines: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, str, str, bool]] = field(default_factory=list)  # (figure, value, target, holds)

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def target(self, figure: str, value: float, fmt: str, target: str, holds: bool) -> None:
        shown = format(value, fmt)
        self.verdicts.append((figure, shown, target, holds))
        self.say(f"    => {figure}: {shown}   target {target}   {'MET' if holds else 'MISSED'}")


def _load_line(label: str, r: LoadResult) -> str:
    errors = f"  errors {r.errors}" if r.errors else ""
    return (
        f"    {label:<34}{r.rps:>10,.0f} req/s   p50 {r.p50_ms:6.2f} ms   p99 {r.p99_ms:6.2f} ms"
        f"   ({r.requests:,} requests, {r.tool}){errors}"
    )


def _check_request(world: World, key: str) -> Request:
    body = json.dumps({"permission": "RESOURCE.UPDATE", "entity": {"type": "resource", "uuid": world.resource}})
    return Request(
        "POST",
        "/api/authz/check/",
        {"Authorization": f"Token {key}", "Content-Type": "application/json"},
        body.encode(),
    )


def _expect_ok(port: int, request: Request, check: str) -> None:
    status, body = call(port, request.method, request.path, request.headers, request.body)
    if status != request.expect or check.encode() not in body:
        raise RuntimeError(f"{request.method} {request.path} answered {status} {body[:300]!r}, expected {check!r}")


@dataclass
class Rounds:
    """One request's share of interleaved phases: a round each, in turn with the others."""

    results: list[LoadResult]

    @property
    def total(self) -> LoadResult:
        """All rounds as one phase: summed requests over summed time; latency percentiles are round medians."""
        first, requests = self.results[0], sum(r.requests for r in self.results)
        seconds = sum(r.seconds for r in self.results)
        return LoadResult(
            first.tool,
            requests,
            sum(r.errors for r in self.results),
            seconds,
            requests / seconds,
            statistics.median(r.p50_ms for r in self.results),
            statistics.median(r.p99_ms for r in self.results),
        )

    def ratio_to(self, other: Rounds) -> float:
        """Median over rounds of this request's throughput over ``other``'s in the same round."""
        return statistics.median(a.rps / b.rps for a, b in zip(self.results, other.results, strict=True))


def interleaved(args: argparse.Namespace, port: int, requests: dict[str, Request]) -> dict[str, Rounds]:
    """Warm each request up, then give each ``args.duration`` seconds split into ``args.rounds`` rounds, in turn.

    On a shared 2-vCPU machine the speed drifts over seconds; taking turns exposes every request to the same drift,
    and the median of per-round ratios ignores a round that a neighbour disturbed.
    """
    use_wrk = not args.python_load
    for request in requests.values():
        loadgen.run(port, request, min(2.0, args.duration), args.connections, prefer_wrk=use_wrk)
    out: dict[str, Rounds] = {name: Rounds([]) for name in requests}
    for _ in range(args.rounds):
        for name, request in requests.items():
            out[name].results.append(
                loadgen.run(port, request, args.duration / args.rounds, args.connections, prefer_wrk=use_wrk)
            )
    return out


def service_phases(args: argparse.Namespace, report: Report, world: World) -> dict[str, LoadResult]:
    """(1) check vs /health and (5) PAT create/rotate, against one backend."""
    out: dict[str, LoadResult] = {}
    with uvicorn_server("bench.app:create_bench_app", world.env, args.workers, factory=True) as port:
        health = Request("GET", "/health", {})
        check = _check_request(world, world.pat)
        bare = Request("POST", BARE_CHECK_PATH, {"Content-Type": "application/json"}, check.body)
        # the same call from clients whose addresses take turns: no request repeats the one before it
        spread = replace(check, forwarded_for=tuple(f"198.51.100.{n}" for n in range(1, 9)))
        _expect_ok(port, check, '"allowed":true')
        _expect_ok(port, health, "ok")
        _expect_ok(port, bare, '"clause":"bare"')
        rounds = interleaved(args, port, {"health": health, "bare": bare, "check": check, "spread": spread})
        out.update({name: r.total for name, r in rounds.items()})
        report.say(
            f"[1] POST /api/authz/check/ (PAT bound to the customer, resource 3 levels down) vs bare endpoints"
            f" of the same app — {world.backend}, {args.workers} workers, {args.rounds} interleaved rounds"
        )
        report.say(_load_line("GET /health (no auth)", out["health"]))
        report.say(_load_line("POST bare twin of the check (no auth)", out["bare"]))
        report.say(_load_line("POST /api/authz/check/ (PAT)", out["check"]))
        per_round = "  ".join(
            f"{c.rps / b.rps:.2f}" for c, b in zip(rounds["check"].results, rounds["bare"].results, strict=True)
        )
        report.say(f"    check/bare-twin by round: {per_round}")
        twin = rounds["check"].ratio_to(rounds["bare"])
        report.target(
            f"check/bare-twin throughput, median of rounds ({world.backend})", twin, ".2f", "≥ 0.80", twin >= 0.8
        )
        report.say(
            f"    (check/health, which also counts reading the JSON body: "
            f"{rounds['check'].ratio_to(rounds['health']):.2f})"
        )
        report.say(_load_line("POST /api/authz/check/, 8 addresses", out["spread"]))
        report.say(
            f"    (the same PAT from 8 client addresses in turn, so each request takes the full verification "
            f"path: {rounds['spread'].ratio_to(rounds['bare']):.2f} of the bare twin)"
        )

        owner = {"Authorization": f"Token {world.owner_key}", "Content-Type": "application/json"}
        expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        create_body = json.dumps(
            {
                "name": "bench-create",
                "scopes": ["RESOURCE.UPDATE"],
                "expires_at": expires,
                "allowed_scopes": [{"type": "customer", "uuid": world.customer}],
            }
        ).encode()
        create = Request("POST", "/api/personal-access-tokens/", owner, create_body, expect=201)
        _expect_ok(port, create, '"token":"w_')
        starts = []
        for _ in range(args.write_connections):
            status, body = call(port, create.method, create.path, create.headers, create.body)
            assert status == 201, body
            starts.append(json.loads(body)["uuid"])
        duration = max(1.0, args.duration * 0.6)
        out["create"] = loadgen.run_python(port, create, duration, args.write_connections)
        rotate = Request("POST", "/api/personal-access-tokens/{uuid}/rotate/", owner, b"", expect=201)
        out["rotate"] = loadgen.run_python(port, rotate, duration, args.write_connections, uuids=starts, follow="uuid")
        report.say(f"[5] PAT create and rotate through HTTP — {world.backend}, {args.write_connections} connections")
        report.say(_load_line("POST /api/personal-access-tokens/", out["create"]))
        report.say(_load_line("POST …/{uuid}/rotate/ (chained)", out["rotate"]))
    return out


def peer_phase(args: argparse.Namespace, report: Report, world: World, workdir: Path) -> LoadResult:
    """(2) the same call against Django REST framework + django-rest-knox under the same server."""
    db = workdir / "peer_drf.db"
    db.unlink(missing_ok=True)
    env = {"PEER_DRF_DB": str(db), "DJANGO_SETTINGS_MODULE": "bench.peer_drf.settings"}
    out = subprocess.run(
        [sys.executable, "-m", "bench.peer_drf.prepare"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    key, user_id = out[-2], out[-1]
    env["PEER_DRF_TREE"] = f"{world.customer},{world.project},{world.resource},{user_id}"
    with uvicorn_server("bench.peer_drf.asgi:application", env, args.workers, lifespan="off") as port:
        request = _check_request(world, key)
        _expect_ok(port, request, '"allowed":true')
        return interleaved(args, port, {"peer": request})["peer"].total


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark and write RESULTS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers for both stacks (default 2)")
    parser.add_argument("--duration", type=float, default=24.0, help="seconds per load phase (default 24)")
    parser.add_argument(
        "--rounds", type=int, default=12, help="interleaved rounds the check/bare comparison is split into (default 12)"
    )
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections for read phases")
    parser.add_argument("--write-connections", type=int, default=4, help="connections for create/rotate phases")
    parser.add_argument("--tokens", type=int, default=1_000_000, help="stored PATs for the scaling figure")
    parser.add_argument("--cache-entries", type=int, default=100_000, help="cached verifications for memory")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-peer", action="store_true", help="skip the Django REST framework + knox phase")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the results (Markdown)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    report = Report()
    tool = "wrk (1 thread)" if loadgen.wrk_available() and not args.python_load else "bench/loadgen.py (Python)"
    backends = ["sqlite"] + (["postgres"] if not args.no_postgres and postgres_reachable() else [])
    report.say(
        f"tokengate bench — {args.workers} workers, {args.duration:g} s per phase, "
        f"{args.connections} connections, load generator: {tool}; backends: {', '.join(backends)}"
    )
    if not args.no_postgres and "postgres" not in backends:
        report.say("(PostgreSQL at 127.0.0.1:5432 not reachable: skipped)")
    report.say()

    from bench.decisions import load, scenarios

    report.say("[3] policy decision, µs (deep folder policy, 200 orgs x 8 levels)")
    rows = scenarios()
    for depth, memo, label, us in rows:
        report.say(f"    depth {depth} {memo:<4} {label:<40}{us:>9.2f} µs")
    warm8 = max(us for depth, memo, _, us in rows if depth == 8 and memo == "warm")
    cold8 = max(us for depth, memo, _, us in rows if depth == 8 and memo == "cold")
    report.target("cold decision at depth 8 (worst case, Casbin's answer)", cold8, ".1f", "≤ 200 µs", cold8 <= 200)
    report.target("warm decision at depth 8 (worst case)", warm8, ".2f", "≤ 1 µs", warm8 <= 1)
    seconds, mib = load(1_000_000, 100_000)
    report.say(f"    engine load, 1,000,000 entities + 100,000 assignments: {seconds:.1f} s, {mib:.0f} MiB resident")
    report.say()

    from bench.invariants import measure

    report.say("[3b] policy assert: the shipped invariants, proved")
    proofs = measure()
    for name, status, decisions, seconds in proofs:
        report.say(f"    {name:<46}{status:>10}{decisions:>9,} decisions{seconds * 1000:>8.0f} ms")
    total = sum(seconds for *_, seconds in proofs)
    report.target("every shipped invariant proved, total", total, ".2f", "< 5 s", total < 5)
    report.say()

    workdir = Path(tempfile.mkdtemp(prefix="tokengate-bench-"))
    try:
        throughput: dict[str, dict[str, LoadResult]] = {}
        for backend in backends:
            with database(backend, workdir, "service") as url:
                world = prepare(backend, url)
                throughput[backend] = service_phases(args, report, world)
                report.say()
                if backend == "sqlite" and not args.no_peer:
                    peer = peer_phase(args, report, world, workdir)
                    ours = throughput["sqlite"]["check"]
                    report.say(
                        f"[2] the same call: tokengate vs Django REST framework + django-rest-knox "
                        f"(uvicorn, uvloop + httptools, {args.workers} workers, SQLite)"
                    )
                    report.say(_load_line("tokengate POST /api/authz/check/", ours))
                    report.say(_load_line("DRF + knox POST /api/authz/check/", peer))
                    report.target(
                        "tokengate/DRF+knox throughput", ours.rps / peer.rps, ".1f", "≥ 5x", ours.rps / peer.rps >= 5
                    )
                    report.say()

        from bench.tokens import cache_memory, verification_scaling

        counts = (1_000, args.tokens) if args.tokens > 1_000 else (100, args.tokens)
        for backend in backends:
            with (
                database(backend, workdir, "verify_small") as small,
                database(backend, workdir, "verify_large") as large,
            ):
                scaling = verification_scaling(backend, [small, large], counts)
            report.say(f"[4] token verification, cache-miss path (HMAC + lookup by unique hash) — {backend}")
            for count, us in zip(scaling.counts, scaling.median_us, strict=True):
                report.say(f"    {count:>10,} stored PATs   median {us:8.1f} µs per verification")
            report.target(
                f"verification at {counts[1]:,} / at {counts[0]:,} ({backend})",
                scaling.ratio,
                ".2f",
                "≤ 1.2",
                scaling.ratio <= 1.2,
            )
        report.say()

        memory = cache_memory(args.cache_entries)
        report.say(
            f"[5] verification cache memory: {memory.entries:,} cached verifications hold "
            f"{memory.bytes / 2**20:.1f} MiB ({memory.per_entry:,.0f} bytes each; "
            f"plaintext in cache: {'YES' if memory.plaintext_found else 'no'})"
        )
        report.say()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.monotonic() - started
    report.say(f"targets: {sum(v[3] for v in report.verdicts)}/{len(report.verdicts)} met; run took {elapsed:.0f} s")
    write_results(args, report, argv)


def _machine() -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = [
        "litestar",
        "msgspec",
        "advanced-alchemy",
        "SQLAlchemy",
        "aiosqlite",
        "asyncpg",
        "pycasbin",
        "uvicorn",
        "uvloop",
        "httptools",
        "Django",
        "djangorestframework",
        "django-rest-knox",
    ]
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (absent)")
    wrk = "absent"
    if shutil.which("wrk"):
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    return [
        f"- nproc: {os.cpu_count()}; CPU: {cpu}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), {platform.platform()}",
        f"- packages: {', '.join(versions)}",
        f"- load generator: {wrk if wrk != 'absent' else 'wrk absent: bench/loadgen.py'}",
    ]


def write_results(args: argparse.Namespace, report: Report, argv: list[str] | None) -> None:
    """Write the Markdown report."""
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    text = [
        "# tokengate benchmark results",
        "",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
        f"Command: `{command.strip()}`",
        "",
        "## Machine",
        "",
        *_machine(),
        "",
        "## Targets",
        "",
        "| figure | value | target | holds |",
        "|---|---|---|---|",
        *[
            f"| {figure} | {value} | {target} | {'yes' if holds else 'no'} |"
            for figure, value, target, holds in report.verdicts
        ],
        "",
        "## Output",
        "",
        "```",
        *report.lines,
        "```",
        "",
    ]
    args.output.write_text("\n".join(text))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
