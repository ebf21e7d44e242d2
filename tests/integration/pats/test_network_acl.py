"""Network ACLs: normalised on input, enforced on the client address (``X-Forwarded-For`` only from trusted proxies)."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from litestar import Litestar
from sqlalchemy import select

from service.events.models import Event
from service.runtime import Runtime
from tests.support.app import http_client
from tests.support.factories import auth, user_with_key
from tests.support.pats import PATS, check, create_pat
from tests.support.world import World

OUTSIDE = "203.0.113.9"
INVALID = {"detail": "Invalid token."}


async def events_of(runtime: Runtime, event_type: str) -> list[Event]:
    async with runtime.session() as session:
        return list(await session.scalars(select(Event).where(Event.event_type == event_type).order_by(Event.id)))


async def retrieve(client: AsyncClient, world: World, uuid: str) -> dict[str, Any]:
    response = await client.get(f"{PATS}{uuid}/", headers=world.owner_headers)
    assert response.status_code == 200
    return response.json()


async def test_acl_is_normalised_on_creation(client: AsyncClient, world: World) -> None:
    created = await create_pat(
        client,
        world.owner_headers,
        allowed_networks=[
            " 192.0.2.1 ",
            "2001:DB8:0:0:0:0:0:1",
            "2001:db8::1/128",
            "10.0.0.0/8",
            "10.0.0.0/8",
            "  198.51.100.0/24",
            "FE80::/10",
            "192.0.2.1/32",
        ],
    )
    expected = ["192.0.2.1/32", "2001:db8::1/128", "10.0.0.0/8", "198.51.100.0/24", "fe80::/10"]
    assert created["allowed_networks"] == expected
    assert (await retrieve(client, world, created["uuid"]))["allowed_networks"] == expected


async def test_request_from_outside_the_acl_is_refused(client: AsyncClient, app: Litestar, world: World) -> None:
    token = (await create_pat(client, world.owner_headers, allowed_networks=["198.51.100.0/24"]))["token"]
    local = await check(client, token, "PROJECT.UPDATE", "project", world.project)
    assert local.status_code == 401
    assert local.json() == INVALID
    assert local.headers["www-authenticate"] == "Token"
    async with http_client(app, OUTSIDE) as outside:
        refused = await check(outside, token, "PROJECT.UPDATE", "project", world.project)
        assert refused.status_code == 401
        assert refused.json() == INVALID
    async with http_client(app, "198.51.100.77") as inside:
        allowed = await check(inside, token, "PROJECT.UPDATE", "project", world.project)
        assert allowed.status_code == 200
        assert allowed.json()["allowed"] is True


@pytest.mark.parametrize(
    ("peer", "networks"),
    [
        ("2001:db8::5", ["2001:db8::/64"]),
        ("::ffff:198.51.100.7", ["198.51.100.7"]),
        ("10.1.2.3", ["10.0.0.0/8"]),
        ("10.1.2.3", ["::ffff:10.0.0.0/104"]),
        ("::ffff:10.1.2.3", ["::ffff:10.1.2.3"]),
    ],
    ids=["ipv6", "ipv4-mapped-peer", "ipv4", "ipv4-mapped-acl", "ipv4-mapped-both"],
)
async def test_acl_matches_ipv4_and_ipv6_peers(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime, peer: str, networks: list[str]
) -> None:
    created = await create_pat(client, world.owner_headers, allowed_networks=networks)
    async with http_client(app, peer) as remote:
        response = await check(remote, created["token"], "PROJECT.UPDATE", "project", world.project)
        assert response.status_code == 200, response.text
    await runtime.usage.flush()
    assert (await retrieve(client, world, created["uuid"]))["last_used_ip"] == peer.removeprefix("::ffff:")


async def test_forwarded_for_is_ignored_with_the_shipped_default(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    """No proxy is trusted unless configured, loopback included: the peer is the client whatever the header says.

    Proxy chains behind a configured proxy: ``tests/security/test_client_address.py``.
    """
    remote_only = await create_pat(client, world.owner_headers, allowed_networks=["203.0.113.0/24"])
    local_only = (await create_pat(client, world.owner_headers, allowed_networks=["127.0.0.1"]))["token"]
    body = {"permission": "PROJECT.UPDATE", "entity": {"type": "project", "uuid": world.project}}
    spoofed_remote = await client.post(
        "/api/authz/check/", json=body, headers={**auth(remote_only["token"]), "X-Forwarded-For": OUTSIDE}
    )
    assert spoofed_remote.status_code == 401
    assert spoofed_remote.json() == INVALID
    for forwarded in [OUTSIDE, "not-an-address"]:
        local = await client.post(
            "/api/authz/check/", json=body, headers={**auth(local_only), "X-Forwarded-For": forwarded}
        )
        assert local.status_code == 200, local.text
    async with http_client(app, OUTSIDE) as direct:
        spoofed = await direct.post(
            "/api/authz/check/", json=body, headers={**auth(local_only), "X-Forwarded-For": "127.0.0.1"}
        )
        assert spoofed.status_code == 401
        assert spoofed.json() == INVALID
    await runtime.usage.flush()
    assert (await retrieve(client, world, remote_only["uuid"]))["last_used_ip"] is None


async def test_set_network_acl_takes_effect_at_once(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers)
    token, path = created["token"], f"{PATS}{created['uuid']}/set_network_acl/"
    assert (await check(client, token, "PROJECT.UPDATE", "project", world.project)).status_code == 200
    narrowed = await client.post(
        path,
        headers=world.owner_headers,
        json={"allowed_networks": [" 198.51.100.1 ", "2001:DB8::/32", "198.51.100.1/32"]},
    )
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["allowed_networks"] == ["198.51.100.1/32", "2001:db8::/32"]
    assert "token" not in narrowed.json()
    assert narrowed.json()["uuid"] == created["uuid"]
    assert (await check(client, token, "PROJECT.UPDATE", "project", world.project)).status_code == 401
    async with http_client(app, "198.51.100.1") as inside:
        assert (await check(inside, token, "PROJECT.UPDATE", "project", world.project)).status_code == 200
    cleared = await client.post(path, headers=world.owner_headers, json={"allowed_networks": []})
    assert cleared.status_code == 200
    assert cleared.json()["allowed_networks"] == []
    assert (await check(client, token, "PROJECT.UPDATE", "project", world.project)).status_code == 200

    changes = await events_of(runtime, "pat_network_acl_updated")
    assert [(e.context["old_allowed_networks"], e.context["new_allowed_networks"]) for e in changes] == [
        ([], ["198.51.100.1/32", "2001:db8::/32"]),
        (["198.51.100.1/32", "2001:db8::/32"], []),
    ]
    assert all(token not in e.message for e in changes)
    assert all(token not in str(e.context) for e in changes)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"allowed_networks": ["0.0.0.0/0"]},
            {"allowed_networks": ["0.0.0.0/0 allows every address; leave the list empty instead."]},
        ),
        (
            {"allowed_networks": ["10.0.0.1/8"]},
            {"allowed_networks": ["10.0.0.1/8 has host bits set; use 10.0.0.0/8 instead."]},
        ),
        ({"allowed_networks": ["nope"]}, {"allowed_networks": ["nope is not a valid IP address or CIDR network."]}),
        (
            {"allowed_networks": [f"10.{n}.0.0/16" for n in range(33)]},
            {"allowed_networks": ["A token can have at most 32 network ACL entries."]},
        ),
        ({}, None),
        ({"allowed_networks": "10.0.0.0/8"}, None),
        ({"allowed_networks": [], "extra": 1}, None),
    ],
    ids=["all", "host-bits", "garbage", "too-many", "missing", "not-a-list", "unknown-field"],
)
async def test_set_network_acl_rejects_bad_input_and_keeps_the_old_list(
    client: AsyncClient, world: World, payload: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    created = await create_pat(client, world.owner_headers, allowed_networks=["127.0.0.1"])
    response = await client.post(f"{PATS}{created['uuid']}/set_network_acl/", json=payload, headers=world.owner_headers)
    assert response.status_code == 400, response.text
    if expected is not None:
        assert response.json() == expected
    assert (await retrieve(client, world, created["uuid"]))["allowed_networks"] == ["127.0.0.1/32"]


async def test_set_network_acl_on_inactive_or_foreign_tokens(
    client: AsyncClient, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers)
    path = f"{PATS}{created['uuid']}/set_network_acl/"
    assert (await client.delete(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).status_code == 204
    inactive = await client.post(path, headers=world.owner_headers, json={"allowed_networks": ["10.0.0.0/8"]})
    assert inactive.status_code == 400
    assert inactive.json() == ["Cannot change the network ACL of an inactive token."]
    assert (await retrieve(client, world, created["uuid"]))["allowed_networks"] == []
    _, other_key = await user_with_key(runtime, "other")
    live = await create_pat(client, world.owner_headers)
    foreign = await client.post(
        f"{PATS}{live['uuid']}/set_network_acl/", headers=auth(other_key), json={"allowed_networks": []}
    )
    assert foreign.status_code == 404
    staff = await client.post(
        f"{PATS}{live['uuid']}/set_network_acl/", headers=world.staff_headers, json={"allowed_networks": []}
    )
    assert staff.status_code == 404  # owners only, as rotate


async def test_denied_request_records_no_usage_and_one_event(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers, allowed_networks=["198.51.100.0/24"])
    async with http_client(app, OUTSIDE) as outside:
        for _ in range(3):
            response = await outside.get(PATS, headers=auth(created["token"]))
            assert response.status_code == 401
            assert response.json() == INVALID
    await runtime.usage.flush()
    shown = await retrieve(client, world, created["uuid"])
    assert (shown["use_count"], shown["last_used_at"], shown["last_used_ip"]) == (0, None, None)
    denied = await events_of(runtime, "pat_access_denied_from_ip")
    assert len(denied) == 1  # debounced per token and address
    assert denied[0].user_id == world.owner.id
    assert denied[0].context["source_ip"] == OUTSIDE
    assert OUTSIDE in denied[0].message
    assert created["token"] not in denied[0].message
    assert await events_of(runtime, "pat_used_from_new_ip") == []


async def test_use_from_a_new_address_is_recorded(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    created = await create_pat(client, world.owner_headers)
    assert (await client.get(PATS, headers=auth(created["token"]))).status_code == 200
    await runtime.usage.flush()
    runtime.verifier.forget_token(runtime.keyring.token_hash(created["token"]))
    async with http_client(app, "198.51.100.7") as elsewhere:
        assert (await elsewhere.get(PATS, headers=auth(created["token"]))).status_code == 200
    await runtime.usage.flush()
    shown = await retrieve(client, world, created["uuid"])
    assert (shown["use_count"], shown["last_used_ip"]) == (2, "198.51.100.7")
    moved = await events_of(runtime, "pat_used_from_new_ip")
    assert len(moved) == 1
    assert "198.51.100.7" in moved[0].message
    assert "127.0.0.1" in moved[0].message


async def test_alternating_addresses_between_flushes_are_all_recorded(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    """Repeated use from one address takes a shortcut; a switch of address in between must still be seen."""
    created = await create_pat(client, world.owner_headers)
    async with http_client(app, "198.51.100.7") as first, http_client(app, "203.0.113.9") as second:
        for caller in (first, first, second, first):
            assert (await caller.get(PATS, headers=auth(created["token"]))).status_code == 200
    await runtime.usage.flush()
    shown = await retrieve(client, world, created["uuid"])
    assert (shown["use_count"], shown["last_used_ip"]) == (4, "198.51.100.7")
    moved = await events_of(runtime, "pat_used_from_new_ip")
    assert [event.context["source_ip"] for event in moved] == ["203.0.113.9", "198.51.100.7"]
