"""The bench modules import and their cheap parts run (the benchmarks themselves never run in CI)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import bench.__main__  # noqa: F401  (the entry point imports)
from bench import loadgen
from bench.tokens import cache_memory


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"uuid":"next"}'
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(name="port")
def fx_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_python_load_generator_follows_uuids(port: int) -> None:
    request = loadgen.Request("POST", "/t/{uuid}/rotate/", {"Content-Type": "application/json"}, b"{}", expect=201)
    result = loadgen.run_python(port, request, 0.5, 2, uuids=["a", "b"], follow="uuid")
    assert result.tool == "python"
    assert result.requests > 0
    assert result.errors == 0
    assert result.p50_ms <= result.p99_ms


def test_cache_memory_holds_no_plaintext() -> None:
    result = cache_memory(500)
    assert result.entries == 500
    assert result.bytes > 0
    assert not result.plaintext_found
