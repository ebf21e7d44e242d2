"""The webhook: configured events delivered once each, signed, retried from the outbox across a restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from sqlalchemy import select

from service.app import create_app
from service.config import ConfigError, Settings
from service.events.models import WebhookDelivery
from service.events.webhook import Claimed, claim_due
from service.runtime import Runtime
from tests.support.app import http_client, make_settings, running
from tests.support.receiver import Received, Receiver

SECRET = "webhook-secret-for-tests"
DEADLINE = 20.0


@pytest.fixture(name="receiver")
def fx_receiver() -> Iterator[Receiver]:
    with Receiver(planned=[500, 500]) as receiver:  # the first two attempts fail
        yield receiver


@pytest.fixture(name="settings")
def fx_settings(database_url: str, tmp_path: Path, receiver: Receiver) -> Settings:
    return make_settings(
        database_url,
        tmp_path,
        TOKENGATE_WEBHOOK__URL=receiver.url + "/hook",
        TOKENGATE_WEBHOOK__SECRET=SECRET,
        TOKENGATE_WEBHOOK__POLL_SECONDS="0.1",
        TOKENGATE_WEBHOOK__RETRY_BASE_SECONDS="1",
        TOKENGATE_WEBHOOK__TIMEOUT_SECONDS="2",
    )


def verified(received: Received) -> dict[str, object]:
    """The delivered event, after checking the signature and the id header as a receiver would."""
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["x-tokengate-signature"], expected)
    event: dict[str, object] = json.loads(received.body)
    assert received.headers["x-tokengate-event-id"] == event["id"]
    return event


async def record(runtime: Runtime, event_type: str, message: str) -> None:
    async with runtime.session() as session:
        await runtime.event_recorder(session).record(event_type, message, detail="x")


async def until(condition: Callable[[], bool]) -> None:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < DEADLINE, "the webhook did not deliver in time"
        await asyncio.sleep(0.05)


async def settled_failure(runtime: Runtime) -> WebhookDelivery:
    """The one outbox row, once a failed attempt has been recorded on it."""
    start = time.monotonic()
    while True:
        async with runtime.session() as session:
            rows = (await session.scalars(select(WebhookDelivery))).all()
        if rows and rows[0].last_error is not None:
            return rows[0]
        assert time.monotonic() - start < DEADLINE, "no failed attempt was recorded"
        await asyncio.sleep(0.05)


def accepted(receiver: Receiver) -> list[Received]:
    return [item for item in receiver.received if item.status < 300]


async def test_each_event_is_delivered_once_by_two_instances_with_a_valid_signature(
    app: Litestar, settings: Settings, receiver: Receiver
) -> None:
    other: Litestar = create_app(settings)
    runtime: Runtime = app.state.runtime
    async with running(app), running(other):
        for index in range(6):
            await record(runtime if index % 2 else other.state.runtime, "pat_expiring", f"notice {index}")
        await record(runtime, "pat_created", "not a webhook event type")
        await until(lambda: len(accepted(receiver)) == 6)
        await asyncio.sleep(1.5)  # long enough for any duplicate to arrive
    await other.state.runtime.alchemy.get_engine().dispose()
    events = [verified(item) for item in accepted(receiver)]
    assert sorted(str(event["message"]) for event in events) == [f"notice {index}" for index in range(6)]
    assert len({event["id"] for event in events}) == 6
    assert {event["event_type"] for event in events} == {"pat_expiring"}
    assert all(item.path == "/hook" for item in receiver.received)
    assert len(receiver.received) == 8  # the two planned failures, retried, and nothing more


async def test_a_restart_in_the_middle_of_retrying_loses_nothing(
    app: Litestar, settings: Settings, receiver: Receiver
) -> None:
    runtime: Runtime = app.state.runtime
    async with running(app):
        await record(runtime, "pat_reuse_detected", "family revoked")
        pending = await settled_failure(runtime)  # the first attempt failed; the retry is a second away
    # stopped with a retry pending (under load the second attempt may already have failed too)
    assert pending.delivered_at is None
    assert pending.last_error == "HTTP 500"
    assert pending.attempts == len(receiver.received) < 3

    restarted: Litestar = create_app(settings)
    async with running(restarted), http_client(restarted):
        await until(lambda: len(accepted(receiver)) == 1)
        await asyncio.sleep(1.5)
    await restarted.state.runtime.alchemy.get_engine().dispose()
    attempts = [item.headers["x-tokengate-delivery-attempt"] for item in receiver.received]
    assert attempts == ["1", "2", "3"]
    assert [item.status for item in receiver.received] == [500, 500, 200]
    assert len({item.body for item in receiver.received}) == 1
    assert verified(receiver.received[-1])["message"] == "family revoked"
    async with runtime.session() as session:
        [done] = (await session.scalars(select(WebhookDelivery))).all()
    assert done.delivered_at is not None
    assert done.lease_until is None


def test_a_webhook_without_a_secret_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"webhook\.secret is required"):
        make_settings("sqlite+aiosqlite:///x.db", tmp_path, TOKENGATE_WEBHOOK__URL="http://127.0.0.1:9/hook")


async def test_a_lease_keeps_other_workers_off_until_it_runs_out(app: Litestar, settings: Settings) -> None:
    """Claims are atomic (concurrent claimers get disjoint rows); a claim never settled comes due after its lease."""
    runtime: Runtime = app.state.runtime
    for index in range(10):
        await record(runtime, "pat_expiring", f"notice {index}")
    now = datetime.now(UTC)

    async def claim(at: datetime) -> list[Claimed]:
        async with runtime.session() as session:
            return await claim_due(session, settings.webhook, at)

    first, second = await asyncio.gather(claim(now), claim(now))
    assert len(first) + len(second) == 10
    assert not {c.delivery_id for c in first} & {c.delivery_id for c in second}
    assert await claim(now + timedelta(seconds=1)) == []  # held: nobody else sends them meanwhile
    lease = timedelta(seconds=settings.webhook.timeout_seconds * 2 + 5)
    again = await claim(now + lease + timedelta(seconds=1))  # the claimers stopped without settling
    assert sorted(c.delivery_id for c in again) == sorted(c.delivery_id for c in first + second)
    assert {c.attempt for c in again} == {2}
