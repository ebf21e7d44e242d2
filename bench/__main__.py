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
import math
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
from bench.world import (
    ROOT,
    World,
    call,
    database,
    postgres_reachable,
    prepare,
    rss_mib,
    service_env,
    uvicorn_server,
)

RESULTS = ROOT / "bench" / "RESULTS.md"
PHASES = ["decisions", "service", "peer", "crowd", "scaling", "memory"]


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
        """Median over rounds of this request's throughput over ``other``'s in the same round.

        A round in which ``other`` got nothing through (the machine stalled) says nothing and is left out.
        """
        pairs = [(a.rps, b.rps) for a, b in zip(self.results, other.results, strict=True) if b.rps > 0]
        return statistics.median(a / b for a, b in pairs) if pairs else math.nan


def interleaved(
    args: argparse.Namespace, port: int, requests: dict[str, Request], ports: dict[str, int] | None = None
) -> dict[str, Rounds]:
    """Warm each request up, then give each ``args.duration`` seconds split into ``args.rounds`` rounds, in turn.

    On a shared 2-vCPU machine the speed drifts over seconds; taking turns exposes every request to the same drift,
    and the median of per-round ratios ignores a round that a neighbour disturbed. A request named in ``ports`` goes
    to that port (another stack served at the same time) instead of ``port``.
    """
    use_wrk = not args.python_load
    target = {name: (ports or {}).get(name, port) for name in requests}
    for name, request in requests.items():
        loadgen.run(target[name], request, min(2.0, args.duration), args.connections, prefer_wrk=use_wrk)
    out: dict[str, Rounds] = {name: Rounds([]) for name in requests}
    for _ in range(args.rounds):
        for name, request in requests.items():
            out[name].results.append(
                loadgen.run(target[name], request, args.duration / args.rounds, args.connections, prefer_wrk=use_wrk)
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
            f"one-PAT check/bare-twin throughput, median of rounds ({world.backend})",
            twin,
            ".2f",
            "≥ 0.93",
            twin >= 0.93,
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


def crowd_phases(args: argparse.Namespace, report: Report, backend: str, workdir: Path) -> None:
    """(6) many clients: a random PAT of 10,000 (1,000 users) and a random resource of 100,000 per request, against
    the bare twin and against Litestar's own JWTAuth; then a flood of unknown tokens, then changes in the tree."""
    from bench.crowd import Churn, populate
    from bench.peer_jwt import SECRET_ENV, TREE_ENV, encode_tokens

    with database(backend, workdir, "crowd") as url:
        crowd = populate(url, args.crowd_users, args.crowd_tokens_per_user)
        tree = workdir / "crowd-tree.json"
        tree.write_text(json.dumps({"parents": crowd.parents, "owners": crowd.owners}))
        secret = "bench-jwt-secret-" + "j" * 40
        jwts = encode_tokens(secret, crowd.user_ids, args.crowd_tokens_per_user)
        body = json.dumps({"permission": "RESOURCE.UPDATE", "entity": {"type": "resource", "uuid": "{target}"}})

        def shaped(path: str, authorizations: list[str], *, zipf: bool = False) -> Request:
            """Each token asks about a random resource of the customer its owner owns (unknown tokens: the first)."""
            return Request(
                "POST",
                path,
                {"Content-Type": "application/json"},
                body.encode(),
                authorizations=tuple(authorizations),
                zipf=zipf,
                targets=tuple(crowd.resources),
                groups=tuple(crowd.groups + [0] * (len(authorizations) - len(crowd.groups))),
            )

        pats = [f"Token {token}" for token in crowd.tokens]
        bearers = [f"Bearer {token}" for token in jwts]
        requests = {
            "bare": shaped(BARE_CHECK_PATH, pats),
            "uniform": shaped("/api/authz/check/", pats),
            "zipf": shaped("/api/authz/check/", pats, zipf=True),
            "jwt-bare": shaped(BARE_CHECK_PATH, bearers),
            "jwt": shaped("/api/authz/check/", bearers),
        }
        pids: list[int] = []
        service = ("bench.app:create_bench_app", service_env(url))
        peer = ("bench.peer_jwt:create_peer_app", {SECRET_ENV: secret, TREE_ENV: str(tree)})
        with (
            uvicorn_server(*service, args.workers, factory=True, pids=pids) as port,
            uvicorn_server(*peer, args.workers, factory=True) as jwt_port,
        ):
            for name, request in requests.items():
                concrete = replace(
                    request,
                    headers={**request.headers, "Authorization": request.authorizations[0]},
                    body=request.body.replace(b"{target}", crowd.resources[0].encode()),
                )
                _expect_ok(jwt_port if name.startswith("jwt") else port, concrete, '"allowed":')
            # every worker meets (nearly) every token before the timing starts: a first sight is a database lookup, and
            # a long-running server has met its clients' tokens (30 s left 7 % of them unseen by each worker on 2 CPUs)
            loadgen.run(port, requests["uniform"], args.crowd_warmup, args.connections, prefer_wrk=not args.python_load)
            rounds = interleaved(args, port, requests, {"jwt-bare": jwt_port, "jwt": jwt_port})
            tokens = f"{len(crowd.tokens):,} PATs of {len(crowd.user_ids):,} users"
            report.say(
                f"[6] POST /api/authz/check/, a random token of {tokens} and a random resource of "
                f"{len(crowd.resources):,} per request — {backend}, {args.workers} workers, {args.rounds} rounds"
            )
            labels = {
                "bare": "bare twin (no auth)",
                "uniform": "check, tokens uniform",
                "zipf": "check, tokens by Zipf's law",
                "jwt-bare": "JWTAuth app's bare twin",
                "jwt": f"JWTAuth check, {len(jwts):,} JWTs",
            }
            for name, label in labels.items():
                report.say(_load_line(label, rounds[name].total))
            for name in ("uniform", "zipf"):
                ratio = rounds[name].ratio_to(rounds["bare"])
                clean = rounds[name].total.errors == 0  # an answer other than the expected 200 is not a check
                report.target(
                    f"many-token check ({name})/bare twin ({backend})", ratio, ".2f", "≥ 0.80", ratio >= 0.8 and clean
                )
            peer_ratio = rounds["uniform"].ratio_to(rounds["jwt"])
            report.say(f"    (JWTAuth check / its bare twin: {rounds['jwt'].ratio_to(rounds['jwt-bare']):.2f})")
            report.target(f"many-token check / JWTAuth check ({backend})", peer_ratio, ".2f", "> 1.00", peer_ratio > 1)

            before = rss_mib(pids)
            unknown = [f"Token {token}" for token in crowd.unknown]
            flood = replace(shaped("/api/authz/check/", pats + unknown), expect=401)  # wrk counts the 200s apart
            flooded = interleaved(args, port, {"uniform": requests["uniform"], "flood": flood})
            middle = rss_mib(pids)
            loadgen.run(port, flood, args.duration / 2, args.connections, prefer_wrk=not args.python_load)
            after = rss_mib(pids)
            mixed = flooded["flood"].total
            real_rps = (mixed.requests - mixed.errors) / mixed.seconds
            report.say(
                f"    flood, half the requests with one of {len(unknown):,} unknown tokens (well-formed, valid "
                f"checksum): {mixed.rps:,.0f} req/s in all ({flooded['flood'].ratio_to(flooded['uniform']):.2f} of "
                f"the flood-free rate), real tokens answered {real_rps:,.0f} req/s, unknown ones refused "
                f"{mixed.errors / mixed.seconds:,.0f} req/s; workers' memory {before:,.0f} -> {middle:,.0f} MiB, "
                f"{after:,.0f} MiB after as much flood again"
            )
            report.target(
                f"workers' memory growth in a second flood, MiB ({backend})",
                after - middle,
                ".1f",
                "≤ 4 (bounded caches: nothing more to hold)",
                after - middle <= 4,
            )

            quiet, churned, changes = Rounds([]), Rounds([]), 0
            slice_s, use_wrk = args.duration / args.rounds, not args.python_load
            churn = Churn(crowd)
            try:
                for _ in range(args.rounds):
                    quiet.results.append(
                        loadgen.run(port, requests["uniform"], slice_s, args.connections, prefer_wrk=use_wrk)
                    )
                    churn.start(max(1.0, quiet.results[-1].rps / 100), slice_s)
                    churned.results.append(
                        loadgen.run(port, requests["uniform"], slice_s, args.connections, prefer_wrk=use_wrk)
                    )
                    changes += churn.made()
            finally:
                churn.close()
            ratio = churned.ratio_to(quiet)
            report.say(
                f"    with a project registered and a role granted elsewhere in the tree per 100 requests (straight "
                f"in the database, as another instance would; {changes:,} of each): {churned.total.rps:,.0f} req/s"
            )
            report.target(f"many-token check with churn / without ({backend})", ratio, ".2f", "≥ 0.90", ratio >= 0.9)


def decision_phase(report: Report) -> None:
    """(3) decision latency, cold and warm, and the engine's load time."""
    from bench.decisions import at_scale, scenarios

    report.say("[3] policy decision, µs (deep folder policy, 200 orgs x 8 levels)")
    rows = scenarios()
    for depth, memo, label, us in rows:
        report.say(f"    depth {depth} {memo:<4} {label:<40}{us:>9.2f} µs")
    warm8 = max(us for depth, memo, _, us in rows if depth == 8 and memo == "warm")
    cold8 = max(us for depth, memo, _, us in rows if depth == 8 and memo == "cold")
    report.target("cold decision at depth 8 (worst case, Casbin's answer)", cold8, ".1f", "≤ 200 µs", cold8 <= 200)
    report.target("warm decision at depth 8 (worst case)", warm8, ".2f", "≤ 1 µs", warm8 <= 1)
    scale = at_scale(1_000_000, 100_000)
    report.say(
        f"    engine load, 1,000,000 entities + 100,000 assignments: {scale.load_seconds:.1f} s, "
        f"{scale.load_mib:.0f} MiB resident"
    )
    report.say(f"    there, 20,000 questions of 5,000 users, memo warm: {scale.quiet_us:.2f} µs (CPU) per decision")
    report.say(
        f"    the same with an entity registered and a role granted elsewhere per 100 decisions ({scale.changes:,} "
        f"of each): {scale.churn_us:.2f} µs; the pair of changes itself: {scale.change_us:.2f} µs"
    )
    ratio = scale.quiet_us / scale.churn_us
    report.target("decision rate at scale with churn / without", ratio, ".2f", "≥ 0.90", ratio >= 0.9)
    report.say(
        f"    the same with one of those entities (a leaf) removed and one of those roles revoked per 100 decisions: "
        f"{scale.removal_us:.2f} µs; the pair of changes itself: {scale.removal_change_us:.2f} µs"
    )
    ratio = scale.quiet_us / scale.removal_us
    report.target("decision rate at scale with removals / without", ratio, ".2f", "≥ 0.90", ratio >= 0.9)
    report.say(
        f"    there, a question about a target the user never asked about, of a shape already answered (another folder"
        f" of the same org): {scale.new_target_us:.2f} µs"
    )
    report.say(f"    memory per memoised decision (a full memo, 65,536): {scale.memo_bytes:.0f} bytes")
    report.say()


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
    parser.add_argument("--crowd-users", type=int, default=1_000, help="users of the many-token phase")
    parser.add_argument("--crowd-tokens-per-user", type=int, default=10, help="PATs (and JWTs) per user there")
    parser.add_argument("--crowd-warmup", type=float, default=60.0, help="seconds of load before it is timed")
    parser.add_argument(
        "--only", nargs="+", choices=PHASES, default=PHASES, metavar="PHASE", help=f"run these: {', '.join(PHASES)}"
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    load_at_start = os.getloadavg()
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

    if "decisions" in args.only:
        decision_phase(report)

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
        for backend in backends if "service" in args.only else []:
            with database(backend, workdir, "service") as url:
                world = prepare(backend, url)
                throughput[backend] = service_phases(args, report, world)
                report.say()
                if backend == "sqlite" and "peer" in args.only and not args.no_peer:
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

        for backend in backends if "crowd" in args.only else []:
            crowd_phases(args, report, backend, workdir)
            report.say()

        from bench.tokens import cache_memory, verification_scaling

        counts = (1_000, args.tokens) if args.tokens > 1_000 else (100, args.tokens)
        for backend in backends if "scaling" in args.only else []:
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

        if "memory" in args.only:
            memory = cache_memory(args.cache_entries)
            report.say(
                f"[5] verification cache memory: {memory.entries:,} cached verifications of "
                f"{memory.owners:,} owners hold {memory.bytes / 2**20:.1f} MiB "
                f"(plaintext in cache: {'YES' if memory.plaintext_found else 'no'})"
            )
            report.target("bytes per cached verification", memory.per_entry, ",.0f", "≤ 300", memory.per_entry <= 300)
            report.say(
                f"    a change to one owner (forget_user) with the cache full: {memory.forget_user_us:,.1f} µs "
                "(every sign-in changes its user, in every worker)"
            )
            report.say()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.monotonic() - started
    report.say(f"targets: {sum(v[3] for v in report.verdicts)}/{len(report.verdicts)} met; run took {elapsed:.0f} s")
    write_results(args, report, argv, (load_at_start, os.getloadavg()))


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


def write_results(
    args: argparse.Namespace,
    report: Report,
    argv: list[str] | None,
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    """Write the Markdown report; ``load`` is the machine's load average (1, 5, 15 min) at the start and the end."""
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
        f"- load average (1/5/15 min) at the start: {' / '.join(f'{v:.1f}' for v in load[0])}, at the end: "
        f"{' / '.join(f'{v:.1f}' for v in load[1])} (other work on the machine shares its CPUs with the bench)",
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
