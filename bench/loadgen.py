"""Load generation against 127.0.0.1: wrk when installed, else a bounded Python generator in its own process.

The Python generator speaks raw HTTP/1.1 over keep-alive sockets (asyncio, uvloop when available): httpx costs more
per request than the server under test. It also drives the dynamic phases (PAT rotation needs the successor's uuid
from each response), which wrk cannot do.

Run as ``python -m bench.loadgen SPEC.json`` (used by :func:`run_python`); it prints one JSON line of results.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LoadResult:
    """What one load phase measured."""

    tool: str
    requests: int
    errors: int  # responses with an unexpected status, plus socket errors
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass
class Request:
    """One HTTP request; ``{uuid}`` in ``path`` is replaced per connection (see ``uuids``/``follow``)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    expect: int = 200
    forwarded_for: tuple[str, ...] = ()
    """Client addresses sent in ``X-Forwarded-For``, one per request in turn (127.0.0.1 is a trusted proxy there)."""
    authorizations: tuple[str, ...] = ()
    """``Authorization`` values, one picked at random per request (uniformly, or by ``zipf``)."""
    zipf: bool = False
    """Pick ``authorizations`` by Zipf's law (s = 1): the first is used most, the n-th 1/n as often."""
    targets: tuple[str, ...] = ()
    """Values for ``{target}`` in the body, one picked uniformly at random per request (within the group, below)."""
    groups: tuple[int, ...] = ()
    """The target group of each of ``authorizations``: ``targets`` is cut into ``max(groups) + 1`` equal consecutive
    blocks and a request with the i-th Authorization value picks its target in block ``groups[i]`` (a client asks
    about what it can see). Empty: every request picks among all targets."""

    def block(self) -> int:
        """How many targets each group holds."""
        return len(self.targets) // (max(self.groups) + 1) if self.groups else len(self.targets)


def wrk_available() -> bool:
    """Whether the wrk binary is on PATH."""
    return shutil.which("wrk") is not None


def run(port: int, request: Request, duration: float, connections: int, *, prefer_wrk: bool = True) -> LoadResult:
    """Drive ``request`` at ``127.0.0.1:port`` for ``duration`` seconds with ``connections`` keep-alive connections."""
    if prefer_wrk and wrk_available():
        return run_wrk(port, request, duration, connections)
    return run_python(port, request, duration, connections)


# -- wrk ---------------------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _lua_string(value: str | bytes) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    return "[==[" + text + "]==]"


def _lua_lines(values: tuple[str, ...], name: str, directory: str) -> list[str]:
    """Lua reading ``values`` into the table ``name`` from a file (a literal table of 100,000 would not compile)."""
    path = Path(directory) / f"{name}.txt"
    path.write_text("\n".join(values) + "\n")
    return [f"local {name} = {{}}", f"for line in io.lines({_lua_string(str(path))}) do {name}[#{name} + 1] = line end"]


def _lua_random_request(request: Request, directory: str) -> list[str]:
    """A ``request()`` that picks an Authorization value and a body target per request."""
    lines = _lua_lines(request.authorizations, "authorizations", directory)
    lines += _lua_lines(tuple(map(str, request.groups or [0] * len(request.authorizations))), "groups", directory)
    lines.append("math.randomseed(os.time())")
    if request.zipf:
        lines += [
            "local cdf, total = {}, 0",
            "for i = 1, #authorizations do total = total + 1 / i; cdf[i] = total end",
            "local function pick() local r, lo, hi = math.random() * total, 1, #cdf; "
            "while lo < hi do local mid = math.floor((lo + hi) / 2); "
            "if cdf[mid] < r then lo = mid + 1 else hi = mid end end; return lo end",
        ]
    else:
        lines.append("local function pick() return math.random(#authorizations) end")
    body = request.body.decode()
    if request.targets:
        before, _, after = body.partition("{target}")
        lines += _lua_lines(request.targets, "targets", directory)
        lines.append(
            f"local block = {request.block()}; local function body(i) return {_lua_string(before)} .. "
            f"targets[tonumber(groups[i]) * block + math.random(block)] .. {_lua_string(after)} end"
        )
    else:
        lines.append(f"local function body(i) return {_lua_string(body)} end")
    lines.append(
        "function request() local i = pick(); wrk.headers['Authorization'] = authorizations[i]; "
        "return wrk.format(nil, nil, nil, body(i)) end"
    )
    return lines


def run_wrk(port: int, request: Request, duration: float, connections: int) -> LoadResult:
    """One wrk run (one thread: the machine has few cores and the server needs them)."""
    lines = [f"wrk.method = {_lua_string(request.method)}"]
    if request.body:
        lines.append(f"wrk.body = {_lua_string(request.body)}")
    lines += [f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in request.headers.items()]
    directory = tempfile.mkdtemp(prefix="tokengate-wrk-")
    if request.authorizations:
        lines += _lua_random_request(request, directory)
    elif request.forwarded_for:
        lines += [
            "local addresses = {" + ", ".join(_lua_string(a) for a in request.forwarded_for) + "}",
            "local turn = 0",
            "function request() turn = turn % #addresses + 1; "
            "wrk.headers['X-Forwarded-For'] = addresses[turn]; return wrk.format() end",
        ]
    # count unexpected statuses ourselves: wrk only reports non-2xx/3xx
    lines += [
        f"local expect = {request.expect}",
        "bad = 0",
        "function response(status, headers, body) if status ~= expect then bad = bad + 1 end end",
        "function done(summary, latency, requests) end",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--latency",
                "--timeout",
                "5s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}{request.path}",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=duration + 30,
        ).stdout
    finally:
        os.environ.get("BENCH_DEBUG") or os.unlink(script.name)
        shutil.rmtree(directory, ignore_errors=True)
    if os.environ.get("BENCH_DEBUG"):
        print(out)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    assert m is not None
    requests = int(m.group(1))
    seconds = float(m.group(2)) * _UNITS[m.group(3)] / 1e3
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)

    def pct(p: str) -> float:
        hit = re.search(rf"^\s+{p}%\s+([\d.]+)(\w+)", out, re.M)
        return float(hit.group(1)) * _UNITS[hit.group(2)] if hit else float("nan")

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rps = float(rate.group(1)) if rate else requests / seconds
    return LoadResult("wrk", requests, errors, seconds, rps, pct("50"), pct("99"))


# -- Python generator ----------------------------------------------------------------------------------------------


def run_python(
    port: int,
    request: Request,
    duration: float,
    connections: int,
    *,
    uuids: list[str] | None = None,
    follow: str | None = None,
) -> LoadResult:
    """Run the Python generator in a separate process (so it never shares a core's GIL with the caller).

    Args:
        uuids: one starting value per connection for ``{uuid}`` in the path.
        follow: a JSON field of each response that becomes the connection's next ``{uuid}`` (PAT rotation).
    """
    spec = {
        "port": port,
        "request": {**asdict(request), "body": request.body.decode()},
        "duration": duration,
        "connections": connections,
        "uuids": uuids,
        "follow": follow,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", handle.name],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=duration + 60,
        ).stdout
    finally:
        os.unlink(handle.name)
    return LoadResult(**json.loads(out.strip().splitlines()[-1]))


def _encode(request: dict, path: str, forwarded_for: str | None = None) -> list[bytes]:
    """The request's bytes: one variant per ``forwarded_for`` address, else one."""
    if forwarded_for is None and request["forwarded_for"]:
        return [_encode(request, path, address)[0] for address in request["forwarded_for"]]
    head = [f"{request['method']} {path} HTTP/1.1", "Host: 127.0.0.1"]
    head += [f"{k}: {v}" for k, v in request["headers"].items()]
    if forwarded_for is not None:
        head.append(f"X-Forwarded-For: {forwarded_for}")
    body = request["body"].encode()
    head.append(f"Content-Length: {len(body)}")
    return [("\r\n".join(head) + "\r\n\r\n").encode() + body]


def _random_payload(request: dict) -> bytes:
    """One request with a random Authorization value (by Zipf's law if asked) and body target."""
    import random

    values = request["authorizations"]
    if request["zipf"]:
        if "zipf_cumulative" not in request:
            request["zipf_cumulative"] = list(itertools.accumulate(1 / rank for rank in range(1, len(values) + 1)))
        index = random.choices(range(len(values)), cum_weights=request["zipf_cumulative"])[0]
    else:
        index = random.randrange(len(values))
    authorization = values[index]
    body = request["body"]
    if request["targets"]:
        targets, groups = request["targets"], request["groups"]
        block = len(targets) // (max(groups) + 1) if groups else len(targets)
        start = groups[index] * block if groups else 0
        body = body.replace("{target}", targets[start + random.randrange(block)])
    return _encode(
        {**request, "headers": {**request["headers"], "Authorization": authorization}, "body": body}, request["path"]
    )[0]


async def _connection(port: int, spec: dict, uuid: str | None, deadline: float, stats: dict) -> None:
    request, follow = spec["request"], spec["follow"]
    static = _encode(request, request["path"]) if uuid is None and not request["authorizations"] else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = stats["latencies"]
    try:
        while time.perf_counter() < deadline:
            if static:
                payloads = static
            elif request["authorizations"]:
                payloads = [_random_payload(request)]
            else:
                payloads = _encode(request, request["path"].replace("{uuid}", uuid or ""))
            stats["turn"] += 1
            payload = payloads[stats["turn"] % len(payloads)]
            start = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            latencies.append(time.perf_counter() - start)
            if status != request["expect"]:
                stats["errors"] += 1
            elif follow:
                uuid = json.loads(body)[follow]
    except (OSError, asyncio.IncompleteReadError):
        stats["errors"] += 1
    finally:
        writer.close()


async def _main(spec: dict) -> dict:
    stats: dict = {"latencies": [], "errors": 0, "turn": 0}
    uuids = spec["uuids"] or [None] * spec["connections"]
    start = time.perf_counter()
    deadline = start + spec["duration"]
    await asyncio.gather(*(_connection(spec["port"], spec, u, deadline, stats) for u in uuids))
    seconds = time.perf_counter() - start
    lat = sorted(stats["latencies"])
    n = len(lat)

    def pct(p: float) -> float:
        return lat[min(n - 1, int(n * p))] * 1e3 if n else float("nan")

    return asdict(LoadResult("python", n, stats["errors"], seconds, n / seconds, pct(0.50), pct(0.99)))


if __name__ == "__main__":
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        print(json.dumps(asyncio.run(_main(spec))))
    else:
        print(json.dumps(uvloop.run(_main(spec))))
