"""Logs of a short real run: every line is JSON, the request id is echoed, and no line holds a token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from service.db import upgrade_database
from service.runtime import Runtime
from tests.support.app import make_settings
from tests.support.factories import user_with_key
from tests.support.served import SECRET, Served, create_pat, owner_with_pat_rights

pytestmark = pytest.mark.slow


async def _staff_key(url: str, tmp: Path) -> str:
    runtime = Runtime.build(make_settings(url, tmp, TOKENGATE_SECURITY__SECRET=SECRET))
    try:
        return (await user_with_key(runtime, "root", staff=True))[1]
    finally:
        await runtime.alchemy.get_engine().dispose()


def test_a_short_run_logs_json_with_request_ids_and_no_token(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}"
    upgrade_database(make_settings(url, tmp_path, TOKENGATE_SECURITY__SECRET=SECRET))
    owner_key = asyncio.run(owner_with_pat_rights(url, tmp_path))
    staff_key = asyncio.run(_staff_key(url, tmp_path))
    served = Served(url, tmp_path, workers=1)
    try:
        served.start()
        with httpx.Client(base_url=served.base_url, timeout=10) as client:
            pat = create_pat(client, owner_key)
            staff = {"Authorization": f"Token {staff_key}", "X-Request-ID": "search-by-key-1"}
            search = client.get("/api/users/auth_tokens", params={"search": owner_key}, headers=staff)
            assert search.status_code == 200
            assert search.headers["x-request-id"] == "search-by-key-1"
            assert len(search.json()) == 1
            used = client.get("/api/personal-access-tokens/", headers={"Authorization": f"Token {pat['token']}"})
            assert used.status_code == 200
            pasted = client.get(f"/api/{pat['token']}/", headers={"X-Request-ID": "bad id with spaces"})
            assert pasted.status_code == 404
            generated = pasted.headers["x-request-id"]
            assert generated != "bad id with spaces"
            assert len(generated) == 32
            assert client.get("/api/users/", headers={"Authorization": "Token " + owner_key[:-1]}).status_code == 401
        assert served.terminate() == 0
    finally:
        served.kill_all()
    lines = served.lines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(record, dict) for record in records)
    assert all(record["level"] for record in records)
    assert all(record["logger"] for record in records)
    for line in lines:
        for secret in (owner_key, staff_key, pat["token"], owner_key[:-1]):
            assert secret not in line, line
    access = {record["request_id"]: record for record in records if record["logger"] == "tokengate.access"}
    assert access["search-by-key-1"]["path"] == "/api/users/auth_tokens"
    assert access["search-by-key-1"]["status"] == 200
    assert access["search-by-key-1"]["credential"].startswith("token:")
    assert isinstance(access["search-by-key-1"]["user_id"], int)
    assert access[generated]["status"] == 404
    assert access[generated]["path"].startswith("/api/w_")
    pat_lines = [record for record in access.values() if (record["credential"] or "").startswith("pat:")]
    assert [record["route"] for record in pat_lines] == ["/api/personal-access-tokens"]
