"""``POST /api/credentials/revoke/``: anyone reports tokens found in public; live ones are revoked, nothing is told."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient, Response

from service.config import Settings
from service.crypto import new_pat
from service.runtime import Runtime
from tests.support.app import make_settings
from tests.support.factories import auth, user_with_key
from tests.support.pats import PATS, check, create_pat, flip_last
from tests.support.world import World, key_of

REVOKE = "/api/credentials/revoke/"
SOURCE = "https://paste.example/abc"
REPORTER = {"X-Forwarded-For": "203.0.113.9"}


@pytest.fixture(name="settings")
def fx_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        TOKENGATE_LEAKS__REQUESTS_PER_MINUTE="30",
        TOKENGATE_LEAKS__MAX_CREDENTIALS_PER_REQUEST="5",
        TOKENGATE_SECURITY__TRUSTED_PROXIES='["127.0.0.1/32"]',  # reporters behind a proxy on loopback
    )


async def report(client: AsyncClient, *credentials: str, headers: dict[str, str] | None = None) -> Response:
    body = {"credentials": list(credentials), "source": SOURCE}
    return await client.post(REVOKE, json=body, headers=headers or REPORTER)


def shape(response: Response) -> tuple[int, str, str, tuple[str, ...]]:
    """Everything a reporter sees, but the rate-limit counters and the date."""
    names = tuple(sorted(name for name in response.headers if not name.startswith("ratelimit-") and name != "date"))
    return response.status_code, response.headers["content-type"], response.text, names


async def live(client: AsyncClient, token: str, world: World) -> int:
    return (await check(client, token, "PROJECT.UPDATE", "project", world.project)).status_code


async def test_valid_revoked_malformed_and_foreign_strings_get_one_answer(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    valid = await create_pat(client, world.owner_headers, name="leaked")
    revoked = await create_pat(client, world.owner_headers, name="old")
    kept = await create_pat(client, world.owner_headers, name="kept")
    assert (await client.delete(f"{PATS}{revoked['uuid']}/", headers=world.owner_headers)).status_code == 204
    malformed = flip_last(valid["token"])
    foreign = "ghp_" + "a" * 36
    answers = [await report(client, s) for s in (valid["token"], revoked["token"], malformed, foreign)]
    assert answers[0].status_code == 202
    assert answers[0].json() == {"detail": "Report received. Any valid credentials in it will be revoked."}
    assert len({shape(answer) for answer in answers}) == 1

    assert await live(client, valid["token"], world) == 401
    assert await live(client, kept["token"], world) == 200
    states = {item["name"]: item["is_active"] for item in (await client.get(PATS, headers=world.owner_headers)).json()}
    assert states == {"leaked": False, "old": False, "kept": True}
    events = await client.get(
        "/api/events/", headers=world.owner_headers, params={"event_type": "token_reported_leaked"}
    )
    [event] = events.json()
    assert event["context"]["pat_name"] == "leaked"
    assert event["context"]["reported_source"] == SOURCE
    assert event["context"]["reporter_address"] == "203.0.113.9"
    assert valid["token"] not in events.text


async def test_a_leaked_legacy_key_is_deleted(client: AsyncClient, world: World, runtime: Runtime) -> None:
    other, other_key = await user_with_key(runtime, "other")
    assert (await report(client, other_key, flip_last(key_of(world.owner_headers)))).status_code == 202
    assert (await client.get(PATS, headers=auth(other_key))).status_code == 401
    assert (await client.get(PATS, headers=world.owner_headers)).status_code == 200
    events = await client.get(
        "/api/events/", headers=world.staff_headers, params={"event_type": "token_reported_leaked"}
    )
    assert [event["user"] for event in events.json()] == [str(other.uuid)]


async def test_strings_that_are_not_live_tokens_never_reach_the_database(
    client: AsyncClient, world: World, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions: list[Any] = []
    monkeypatch.setattr(runtime, "session", lambda: sessions.append(1))
    bad_checksum = flip_last(new_pat(int(time.time()) + 3600))
    expired = new_pat(int(time.time()) - 60)
    response = await report(client, bad_checksum, expired, "tgl_" + "A" * 49, "garbage", "w_1_x")
    assert response.status_code == 202
    assert sessions == []


async def test_too_many_strings_in_one_report(client: AsyncClient, world: World) -> None:
    response = await report(client, *["x"] * 6)
    assert response.status_code == 400
    assert response.json() == {"credentials": ["Ensure this field has no more than 5 elements."]}
    assert (await client.post(REVOKE, json={"credentials": ["x"], "extra": 1})).status_code == 400


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_throttle_answers_429_past_its_limit_per_client(client: AsyncClient, world: World) -> None:
    statuses = [(await report(client, "x")).status_code for _ in range(31)]
    assert statuses == [202] * 30 + [429]
    refused = await report(client, "x")
    assert refused.status_code == 429
    assert refused.json() == {"detail": "Too Many Requests"}
    assert (await report(client, "x", headers={"X-Forwarded-For": "198.51.100.7"})).status_code == 202
