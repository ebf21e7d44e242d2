"""*Get All Auth Tokens*: ``GET /api/users/auth_tokens`` (filters, search, ordering, limit/offset), ``regenerate``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from httpx import AsyncClient
from litestar import Litestar

from service.runtime import Runtime
from tests.support.app import SHARED_LOOP
from tests.support.factories import (
    auth,
    find_user,
    make_key,
    make_user,
    parse_links,
    set_token_times,
    token_of,
    user_with_key,
)

LIST = "/api/users/auth_tokens"
ITEM_FIELDS = {"id", "key", "user_data", "created_at", "updated_at"}


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


@dataclass
class TokenHolders:
    """A staff caller and two token holders whose ids, creation, update and user order all disagree."""

    staff_key: str
    ids: dict[str, int]
    keys: dict[str, str]
    prefixes: dict[str, str]

    def expand(self, value: str) -> str:
        return value.format(
            alice_id=self.ids["alice"],
            bob_id=self.ids["bob"],
            bob_key=self.keys["bob"],
            bob_prefix=self.prefixes["bob"],
        )


async def seat_holders(runtime: Runtime) -> TokenHolders:
    """The staff caller and the two holders of :class:`TokenHolders`."""
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    # bob's user row comes first, alice's token first: user order and token id order disagree
    bob = await make_user(runtime, "bob", first_name="Rob%", last_name="Brown")
    alice = await make_user(
        runtime, "alice", first_name="Alicia", last_name="Smith_Jones", mobile_number="+00 000 0000"
    )
    keys = {"alice": await make_key(runtime, alice), "bob": await make_key(runtime, bob)}
    # alice: created and updated later than bob; bob created in the last minute of its day
    await set_token_times(runtime, alice, created_at=at("2024-03-10"), updated_at=at("2024-05-10"))
    await set_token_times(runtime, bob, created_at=at("2024-01-10", 23, 59), updated_at=at("2024-04-10"))
    rows = {name: await token_of(runtime, user) for name, user in (("alice", alice), ("bob", bob))}
    return TokenHolders(
        staff_key=staff_key,
        ids={name: row.id for name, row in rows.items() if row is not None},
        keys=keys,
        prefixes={name: row.key_prefix for name, row in rows.items() if row is not None},
    )


@pytest.fixture(name="holders")
async def fx_holders(runtime: Runtime) -> TokenHolders:
    """The holders, for a test that changes their tokens."""
    return await seat_holders(runtime)


@dataclass
class Listing:
    """The module's shared app with the holders, for the listings that change nothing."""

    client: AsyncClient
    runtime: Runtime
    holders: TokenHolders


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="listing")
async def fx_listing(module_app: Litestar, module_client: AsyncClient) -> Listing:
    runtime: Runtime = module_app.state.runtime
    return Listing(module_client, runtime, await seat_holders(runtime))


async def names(client: AsyncClient, holders: TokenHolders, **params: str) -> list[str]:
    response = await client.get(LIST, params=params, headers=auth(holders.staff_key))
    assert response.status_code == 200, response.text
    return [item["user_data"]["username"] for item in response.json()]


@SHARED_LOOP
async def test_item_shape_and_key_is_only_the_display_prefix(listing: Listing) -> None:
    client, runtime, holders = listing.client, listing.runtime, listing.holders
    alice_id = (await find_user(runtime, "alice")).id
    for path in (LIST, LIST + "/"):
        response = await client.get(path, params={"ordering": "id"}, headers=auth(holders.staff_key))
        assert response.status_code == 200, path
        body = response.json()
        assert isinstance(body, list)
        alice = next(item for item in body if item["user_data"]["username"] == "alice")
        assert set(alice) == ITEM_FIELDS
        assert alice["id"] == holders.ids["alice"]
        assert alice["user_data"] == {"id": alice_id, "username": "alice", "full_name": "Alicia Smith_Jones"}
        assert alice["key"] == holders.keys["alice"][:12]
        assert holders.keys["alice"] not in response.text
        assert datetime.fromisoformat(alice["created_at"]) == at("2024-03-10")
        assert datetime.fromisoformat(alice["updated_at"]) == at("2024-05-10")


@SHARED_LOOP
@pytest.mark.parametrize(
    ("param", "value", "kept", "dropped"),
    [
        ("id_min", "{bob_id}", "bob", "alice"),
        ("id_max", "{alice_id}", "alice", "bob"),
        ("created_date", "2024-03-10", "alice", "bob"),
        ("created_date", "2024-01-10", "bob", "alice"),  # 23:59 still belongs to its day
        ("updated_date", "2024-04-10", "bob", "alice"),
        ("created_from", "2024-03-10", "alice", "bob"),  # the from-day is included
        ("created_to", "2024-01-10", "bob", "alice"),  # the to-day is included to its end
        ("updated_from", "2024-05-10", "alice", "bob"),
        ("updated_to", "2024-04-10", "bob", "alice"),
        ("search", "{bob_id}", "bob", "alice"),  # token id
        ("search", "{bob_prefix}", "bob", "alice"),  # key display prefix
        ("search", "{bob_key}", "bob", "alice"),  # a full key pasted in: found through its hash
        ("search", "LIC", "alice", "bob"),  # username, case-insensitive
        ("search", "+00 000", "alice", "bob"),  # mobile number
        ("search", "alicia", "alice", "bob"),  # first name
        ("search", "brown", "bob", "alice"),  # last name
        ("search", "%", "bob", "alice"),  # a literal %, not a wildcard
        ("search", "_", "alice", "bob"),  # a literal _, not a wildcard
    ],
)
async def test_each_filter_keeps_one_row_and_drops_another(
    listing: Listing, param: str, value: str, kept: str, dropped: str
) -> None:
    client, holders = listing.client, listing.holders
    found = await names(client, holders, **{param: holders.expand(value)})
    assert kept in found
    assert dropped not in found


@SHARED_LOOP
async def test_the_last_representable_day_is_a_filter_not_a_500(listing: Listing) -> None:
    client, holders = listing.client, listing.holders
    for param in ("created_date", "updated_date"):
        assert await names(client, holders, **{param: "9999-12-31"}) == []
    for param in ("created_to", "updated_to"):
        assert {"alice", "bob"} <= set(await names(client, holders, **{param: "9999-12-31"}))


@SHARED_LOOP
async def test_filters_combine(listing: Listing) -> None:
    client, holders = listing.client, listing.holders
    assert await names(client, holders, created_from="2024-01-01", created_to="2024-12-31", search="b") == ["bob"]
    assert await names(client, holders, search="nobody-has-this") == []


@SHARED_LOOP
@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("id", ["alice", "bob"]),
        ("-id", ["bob", "alice"]),
        ("created_at", ["bob", "alice"]),
        ("-created_at", ["alice", "bob"]),
        ("updated_at", ["bob", "alice"]),
        ("-updated_at", ["alice", "bob"]),
        ("user", ["bob", "alice"]),
        ("-user", ["alice", "bob"]),
    ],
)
async def test_each_ordering_key_both_ways(listing: Listing, ordering: str, expected: list[str]) -> None:
    client, holders = listing.client, listing.holders
    found = await names(client, holders, ordering=ordering)
    assert [name for name in found if name != "root"] == expected


@SHARED_LOOP
async def test_limit_offset_count_and_links(listing: Listing) -> None:
    client, holders = listing.client, listing.holders
    response = await client.get(
        LIST, params={"ordering": "id", "limit": 1, "offset": 1}, headers=auth(holders.staff_key)
    )
    assert response.status_code == 200
    assert [item["user_data"]["username"] for item in response.json()] == ["alice"]
    assert response.headers["x-result-count"] == "3"
    links = parse_links(response.headers["link"])
    assert set(links) == {"first", "prev", "next", "last"}
    assert "offset=0" in links["prev"]
    assert "offset=2" in links["next"]
    assert "offset=2" in links["last"]
    assert all("limit=1" in url for url in links.values())  # other parameters kept
    assert all("ordering=id" in url for url in links.values())
    past = await client.get(LIST, params={"offset": 50}, headers=auth(holders.staff_key))
    assert past.status_code == 200
    assert past.json() == []
    assert past.headers["x-result-count"] == "3"
    head = await client.head(LIST, params={"search": "bob"}, headers=auth(holders.staff_key))
    assert head.status_code == 200
    assert head.headers["x-result-count"] == "1"
    assert head.content == b""


async def test_regenerate_keeps_id_and_replaces_the_secret(
    client: AsyncClient, runtime: Runtime, holders: TokenHolders
) -> None:
    old_key, token_id = holders.keys["bob"], holders.ids["bob"]
    assert (await client.get(LIST, headers=auth(old_key))).status_code == 403  # bob is not staff, but valid
    response = await client.post(f"{LIST}/{token_id}/regenerate", headers=auth(holders.staff_key))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == ITEM_FIELDS
    assert body["id"] == token_id
    assert body["key"] != holders.prefixes["bob"]
    assert body["key"].startswith("tgl_")
    assert datetime.fromisoformat(body["updated_at"]) > at("2024-04-10")
    rejected = await client.get(LIST, headers=auth(old_key))
    assert rejected.status_code == 401
    assert rejected.json() == {"detail": "Invalid token."}
    row = await token_of(runtime, await find_user(runtime, "bob"))
    assert row is not None
    assert row.id == token_id
    assert row.key_prefix == body["key"]
    new_key = await make_key(runtime, await find_user(runtime, "bob"))  # what bob's next login returns
    assert new_key != old_key
    assert new_key.startswith(body["key"])
    assert (await client.get(LIST, headers=auth(new_key))).status_code == 403


async def test_regenerate_unknown_id_is_404_and_needs_staff(client: AsyncClient, holders: TokenHolders) -> None:
    missing = await client.post(f"{LIST}/999999/regenerate", headers=auth(holders.staff_key))
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found."}
    forbidden = await client.post(f"{LIST}/{holders.ids['alice']}/regenerate", headers=auth(holders.keys["bob"]))
    assert forbidden.status_code == 403
    assert (await client.post(f"{LIST}/{holders.ids['alice']}/regenerate")).status_code == 401
    assert (await client.get(LIST, headers=auth(holders.keys["alice"]))).status_code == 403  # alice's key unchanged
