"""The password-login throttle holds across workers and instances, in parallel, and is audited.

Every attempt is counted in the shared database before its password is checked: two instances together allow the
limit, not twice it, and a burst of parallel guesses has at most the limit of them evaluated.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select, update

from service.app import create_app
from service.config import Settings
from service.events.models import Event
from service.events.services import EventType
from service.runtime import Runtime
from service.security.models import LoginAttempts
from tests.support.app import make_settings, running
from tests.support.factories import make_user
from tests.support.security import security_client

LOGIN = "/api-auth/password/"
PASSWORD = "correct-horse-battery"
LIMIT = 5


@pytest.fixture(name="settings")
def fx_settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        TOKENGATE_LOGIN__MAX_FAILURES_PER_USERNAME=str(LIMIT),
        TOKENGATE_LOGIN__MAX_FAILURES_PER_IP="1000",
    )


@pytest.fixture(name="second")
async def fx_second(settings: Settings, app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Another instance of the service on the same database (``app``'s teardown empties it)."""
    other = create_app(settings)
    try:
        async with running(other), security_client(other, client_ip="192.0.2.2") as client:
            yield client
    finally:
        await other.state.runtime.alchemy.get_engine().dispose()


async def _login(client: httpx.AsyncClient, password: str, username: str = "alice") -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


async def _events(runtime: Runtime, event_type: str) -> list[Event]:
    async with runtime.session() as session:
        return list(await session.scalars(select(Event).where(Event.event_type == event_type)))


async def test_two_instances_share_one_limit(
    sclient: httpx.AsyncClient, second: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    statuses = [(await _login(client, "wrong-guess")).status_code for client in [sclient, second] * LIMIT]
    assert statuses == [401] * LIMIT + [429] * LIMIT  # 5 failures in all, not 5 per instance
    for client in (sclient, second):
        refused = await _login(client, PASSWORD)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
    assert len(await _events(runtime, EventType.LOGIN_FAILED)) == LIMIT
    throttled = await _events(runtime, EventType.LOGIN_THROTTLED)
    assert len(throttled) == 1  # once per window, however many refusals follow
    assert throttled[0].context["username"] == "alice"
    assert throttled[0].context["limit"] == "username"


async def test_parallel_guesses_evaluate_at_most_the_limit(
    sclient: httpx.AsyncClient, second: httpx.AsyncClient, runtime: Runtime
) -> None:
    """60 guesses at once over two instances, the right one last: at most 5 are evaluated, the right one never."""
    await make_user(runtime, "alice", password=PASSWORD)
    guesses = [(sclient if n % 2 else second, "wrong-guess") for n in range(59)] + [(sclient, PASSWORD)]
    responses = await asyncio.gather(*(_login(client, password) for client, password in guesses))
    statuses = Counter(response.status_code for response in responses)
    assert statuses[401] <= LIMIT, statuses
    assert statuses[200] + statuses[401] <= LIMIT, statuses
    assert set(statuses) <= {401, 429, 200}


async def test_success_clears_the_username_and_gives_the_address_its_attempt_back(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    await make_user(runtime, "alice", password=PASSWORD)
    for _ in range(3):
        for _ in range(LIMIT - 1):
            assert (await _login(sclient, "wrong-guess")).status_code == 401
        assert (await _login(sclient, PASSWORD)).status_code == 200
    async with runtime.session() as session:
        rows = {row.key: row.attempts for row in await session.scalars(select(LoginAttempts))}
    assert rows == {"ip:127.0.0.1": 3 * (LIMIT - 1)}  # the failures stay counted against the address


async def test_a_window_ends_and_unlock_clears_a_lock(sclient: httpx.AsyncClient, runtime: Runtime) -> None:
    await make_user(runtime, "Alice", password=PASSWORD)
    for _ in range(LIMIT):
        assert (await _login(sclient, "wrong-guess", "Alice")).status_code == 401
    assert (await _login(sclient, PASSWORD, "ALICE")).status_code == 429  # one count per name, whatever its case
    assert await runtime.throttle.unlock("alice") is True
    assert await runtime.throttle.unlock("alice") is False
    assert [e.context["username"] for e in await _events(runtime, EventType.LOGIN_UNLOCKED)] == ["alice"]
    assert (await _login(sclient, PASSWORD, "Alice")).status_code == 200
    for _ in range(LIMIT):
        assert (await _login(sclient, "wrong-guess", "Alice")).status_code == 401
    assert (await _login(sclient, PASSWORD, "Alice")).status_code == 429
    async with runtime.session() as session:  # the window started long enough ago
        await session.execute(update(LoginAttempts).values(window_started=LoginAttempts.window_started - 601))
    assert await runtime.throttle.prune() == 2  # the username's and the address's
    assert (await _login(sclient, PASSWORD, "Alice")).status_code == 200


async def test_names_that_grow_when_lower_cased_are_counted_like_any_other(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    """``"İ".lower()`` is two characters: 128 of them once made a key too long for its column (PostgreSQL)."""
    for _ in range(LIMIT):
        assert (await _login(sclient, "wrong-guess", "İ" * 128)).status_code == 401
    assert (await _login(sclient, PASSWORD, "İ" * 128)).status_code == 429


async def test_an_ipv6_slash_64_is_one_address(app: Litestar, runtime: Runtime) -> None:
    """Whoever holds a /64 holds 2**64 addresses: they share one per-address count."""
    runtime.throttle.limits["address"] = 3
    statuses = []
    async with running(app):
        for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:2::4"):
            async with security_client(app, client_ip=host) as client:
                statuses.append((await _login(client, "wrong-guess", f"user-{host}")).status_code)
        assert statuses == [401, 401, 401, 429]
        async with security_client(app, client_ip="2001:db8:1:3::1") as neighbour:  # the next /64
            assert (await _login(neighbour, "wrong-guess", "someone")).status_code == 401
