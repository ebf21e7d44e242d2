"""The client address: one rule (right-most untrusted ``X-Forwarded-For`` entry), canonical, failing closed.

Attacks: a spoofed header from an untrusted peer, a client-chosen left-most entry behind an appending proxy, garbage
entries, a second header, IPv6 scope ids long enough to overflow ``last_used_ip`` — and a usage flush that one bad
row must not block for everyone else.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select

from service.config import Settings
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.security.client_ip import client_ip
from tests.support.app import make_settings
from tests.support.factories import auth, grant, make_entity, user_with_key
from tests.support.security import security_client

PATS = "/api/personal-access-tokens/"
PROXY = "127.0.0.1"
TRUSTED = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("198.51.100.7", "10.1.2.3", "198.51.100.7"),  # an untrusted peer's header is ignored
        (PROXY, None, PROXY),
        (PROXY, "192.0.2.5", "192.0.2.5"),
        (PROXY, "10.1.2.3, 192.0.2.5", "192.0.2.5"),  # nginx $proxy_add_x_forwarded_for: the left is the client's
        (PROXY, "garbage, 192.0.2.5", "192.0.2.5"),  # never reached: left of the client's own address
        (PROXY, "192.0.2.5, garbage", None),  # reached on the way: fails closed
        (PROXY, "192.0.2.5,", None),
        (PROXY, "6.6.6.6, 192.0.2.5, 10.0.0.1", "192.0.2.5"),  # two proxies: both skipped
        ("10.0.0.2", "10.0.0.1", "10.0.0.1"),  # every hop trusted: the left-most is the client
        (PROXY, "fe80::1%eth0", "fe80::1"),  # scope ids dropped
        (PROXY, "fe80::1%" + "x" * 200, None),  # absurd: unparsable
        ("fe80::1%eth0", "10.1.2.3", "fe80::1"),
        (PROXY, "::ffff:192.0.2.5", "192.0.2.5"),
        (PROXY, "[2001:db8::1]:443", "2001:db8::1"),
        (PROXY, "192.0.2.5:8080", "192.0.2.5"),
        (PROXY, "\x00", None),
        ("not-an-address", "192.0.2.5", None),
        (None, "192.0.2.5", None),
    ],
)
def test_client_address_rule(peer: str | None, forwarded_for: str | None, expected: str | None) -> None:
    found = client_ip(peer, forwarded_for, TRUSTED)
    assert (str(found) if found is not None else None) == expected


def test_no_trusted_proxy_means_no_header_is_believed() -> None:
    assert str(client_ip(PROXY, "192.0.2.5", ())) == PROXY


@pytest.fixture(name="settings")
def fx_settings(database_url: str, tmp_path: Path) -> Settings:
    """The service behind one reverse proxy on loopback."""
    return make_settings(database_url, tmp_path, TOKENGATE_SECURITY__TRUSTED_PROXIES='["127.0.0.1/32"]')


async def _pat(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    payload = {
        "name": "ci",
        "scopes": ["PROJECT.UPDATE"],
        "expires_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        **body,
    }
    response = await client.post(PATS, json=payload, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


async def _owner_key(runtime: Runtime, name: str = "owner") -> str:
    user, key = await user_with_key(runtime, name)
    await grant(runtime, user, "CUSTOMER.OWNER", await make_entity(runtime, "customer", f"{name}-customer"))
    return key


async def _pat_row(runtime: Runtime, uuid: str) -> PersonalAccessToken:
    async with runtime.session() as session:
        return (
            await session.execute(select(PersonalAccessToken).where(PersonalAccessToken.uuid == UUID(uuid)))
        ).scalar_one()


async def test_network_acl_judges_the_right_most_untrusted_address(
    sclient: httpx.AsyncClient, app: Litestar, runtime: Runtime
) -> None:
    key = await _owner_key(runtime)
    office = await _pat(sclient, key, allowed_networks=["10.0.0.0/8"])
    headers = auth(office["token"])

    async def status(forwarded_for: list[str], client: httpx.AsyncClient = sclient) -> int:
        sent = [*headers.items(), *(("X-Forwarded-For", value) for value in forwarded_for)]
        return (await client.get(PATS, headers=sent)).status_code

    assert await status(["10.1.2.3"]) == 200  # the trusted proxy says so
    assert await status(["10.1.2.3, 192.0.2.5"]) == 401  # the proxy appended the real client
    assert await status(["10.1.2.3", "192.0.2.5"]) == 401  # ... in a header of its own
    assert await status(["10.1.2.3, garbage"]) == 401
    assert await status(["garbage, 10.1.2.3"]) == 200
    async with security_client(app, client_ip="198.51.100.7") as direct:  # not a proxy: its header is ignored
        assert await status(["10.1.2.3"], direct) == 401
    async with security_client(app, client_ip="10.9.9.9") as inside:
        assert await status(["192.0.2.5"], inside) == 200  # an untrusted peer inside the ACL is itself the client


async def test_scope_ids_are_dropped_and_never_block_usage_recording(
    sclient: httpx.AsyncClient, runtime: Runtime
) -> None:
    """A scope id of 200 characters once overflowed ``last_used_ip`` and stopped every usage flush (PostgreSQL)."""
    attacker = await _pat(sclient, await _owner_key(runtime, "mallory"))
    victim = await _pat(sclient, await _owner_key(runtime, "victim"))
    for forwarded in ["fe80::1%" + "<b>" * 70, "fe80::1%eth0"]:
        response = await sclient.get(PATS, headers={**auth(attacker["token"]), "X-Forwarded-For": forwarded})
        assert response.status_code == 200
    assert (
        await sclient.get(PATS, headers={**auth(victim["token"]), "X-Forwarded-For": "192.0.2.5"})
    ).status_code == 200
    await runtime.usage.flush()
    attacker_row, victim_row = await _pat_row(runtime, attacker["uuid"]), await _pat_row(runtime, victim["uuid"])
    assert (attacker_row.use_count, attacker_row.last_used_ip) == (2, "fe80::1")
    assert (victim_row.use_count, victim_row.last_used_ip) == (1, "192.0.2.5")


async def test_one_row_the_database_refuses_never_blocks_the_others(
    sclient: httpx.AsyncClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL refuses an address longer than its column; the other tokens' usage is written all the same."""
    bad = await _pat(sclient, await _owner_key(runtime, "mallory"))
    good = await _pat(sclient, await _owner_key(runtime, "victim"))
    assert (await sclient.get(PATS, headers=auth(good["token"]))).status_code == 200
    entry = await runtime.verifier.inspect(bad["token"], None)
    assert entry is not None
    runtime.usage.record(entry, time.time(), "x" * 300)
    with caplog.at_level(logging.WARNING, "tokengate.usage"):
        await runtime.usage.flush()
    assert (await _pat_row(runtime, good["uuid"])).use_count == 1
    refused = (await _pat_row(runtime, bad["uuid"])).use_count == 0
    assert refused == runtime.settings.database.url.startswith("postgresql")
    assert refused == any("dropped" in record.message for record in caplog.records)
    await runtime.usage.flush()  # nothing is left over to fail again
    assert (await _pat_row(runtime, good["uuid"])).use_count == 1


async def test_a_failed_shutdown_flush_says_so_and_keeps_what_it_could_not_write(
    settings: Settings,
    runtime: Runtime,
    sclient: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pat = await _pat(sclient, await _owner_key(runtime))
    assert (await sclient.get(PATS, headers=auth(pat["token"]))).status_code == 200

    def unreachable() -> Any:
        raise ConnectionRefusedError("database unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.usage, "_session", unreachable)
        with caplog.at_level(logging.ERROR, "tokengate.usage"):
            await runtime.usage.flush_at_shutdown()
    assert any("usage flush at shutdown failed" in record.message for record in caplog.records)
    await runtime.usage.flush()  # kept: written once the database answers again
    assert (await _pat_row(runtime, pat["uuid"])).use_count == 1
