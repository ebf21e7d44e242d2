"""Every bad PAT gets the same 401; malformed, bad-checksum and expired ones never reach the database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import update

from service.crypto import new_pat
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from tests.support.pats import PATS, create_pat, flip_last
from tests.support.world import World

INVALID = {"detail": "Invalid token."}


def well_formed_expired() -> str:
    return new_pat(int(time.time()) - 60)


OFFLINE_REJECTS: list[tuple[str, Any]] = [
    ("garbage", lambda: "garbage"),
    ("prefix-only", lambda: "w_"),
    ("two-parts", lambda: "w_1234567890"),
    ("non-numeric-expiry", lambda: "w_soon_" + new_pat(2_000_000_000).split("_", 2)[2]),
    ("negative-expiry", lambda: "w_-5_" + new_pat(2_000_000_000).split("_", 2)[2]),
    ("truncated", lambda: new_pat(int(time.time()) + 3600)[:-3]),
    ("bad-checksum", lambda: flip_last(new_pat(int(time.time()) + 3600))),
    ("changed-expiry", lambda: new_pat(int(time.time()) + 3600).replace("w_1", "w_2", 1)),
    ("too-long", lambda: new_pat(int(time.time()) + 3600) + "x" * 200),
    ("expired", well_formed_expired),
    ("expired-long-ago", lambda: new_pat(1)),
    ("legacy-bad-checksum", lambda: "tgl_" + "A" * 49),
    ("sql-ish", lambda: "w_1_' OR 1=1 --"),
]


@pytest.fixture(name="no_database")
def fx_no_database(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every lookup the verifier makes (there must be none)."""
    calls: list[str] = []

    async def load(kind: object, token_hash: str, now: datetime, client: str | None) -> None:
        calls.append(token_hash)

    monkeypatch.setattr(runtime.verifier, "_load", load)
    return calls


@pytest.mark.parametrize(("case", "make"), OFFLINE_REJECTS, ids=[c[0] for c in OFFLINE_REJECTS])
async def test_malformed_and_expired_tokens_are_rejected_offline(
    client: AsyncClient, no_database: list[str], case: str, make: Any
) -> None:
    token = make()
    for keyword in ("Token", "Bearer"):
        response = await client.get(PATS, headers={"Authorization": f"{keyword} {token}"})
        assert response.status_code == 401, (case, response.text)
        assert response.json() == INVALID
        assert response.headers["www-authenticate"] == "Token"
    assert no_database == []


@pytest.mark.parametrize("header", ["Token", "Bearer", "Token a b", "Basic dXNlcjpwYXNz", "Token\tw_1_2 x", "w_1_2"])
async def test_malformed_headers_get_the_uniform_401(client: AsyncClient, no_database: list[str], header: str) -> None:
    response = await client.get(PATS, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json() == INVALID
    assert no_database == []


async def test_unknown_well_formed_token_is_looked_up(client: AsyncClient, no_database: list[str]) -> None:
    token = new_pat(int(time.time()) + 3600)
    response = await client.get(PATS, headers={"Authorization": f"Token {token}"})
    assert response.status_code == 401
    assert response.json() == INVALID
    assert len(no_database) == 1  # the only kind of bad token that costs a lookup (and proves the probe works)


async def test_unknown_token_with_the_real_database(client: AsyncClient, world: World) -> None:
    response = await client.get(PATS, headers={"Authorization": f"Token {new_pat(int(time.time()) + 3600)}"})
    assert response.status_code == 401
    assert response.json() == INVALID


async def test_revoked_and_rotated_out_tokens(client: AsyncClient, world: World) -> None:
    revoked = await create_pat(client, world.owner_headers)
    rotated = await create_pat(client, world.owner_headers)
    for created in (revoked, rotated):
        assert (await client.get(PATS, headers={"Authorization": f"Token {created['token']}"})).status_code == 200
    assert (await client.delete(f"{PATS}{revoked['uuid']}/", headers=world.owner_headers)).status_code == 204
    assert (await client.post(f"{PATS}{rotated['uuid']}/rotate/", headers=world.owner_headers)).status_code == 201
    for created in (revoked, rotated):
        response = await client.get(PATS, headers={"Authorization": f"Bearer {created['token']}"})
        assert response.status_code == 401
        assert response.json() == INVALID


async def test_token_expired_in_the_database(client: AsyncClient, world: World, runtime: Runtime) -> None:
    created = await create_pat(client, world.owner_headers)
    headers = {"Authorization": f"Token {created['token']}"}
    assert (await client.get(PATS, headers=headers)).status_code == 200
    async with runtime.session() as session:
        await session.execute(
            update(PersonalAccessToken)
            .where(PersonalAccessToken.token_hash == runtime.keyring.token_hash(created["token"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    runtime.verifier.forget_token(runtime.keyring.token_hash(created["token"]))
    response = await client.get(PATS, headers=headers)
    assert response.status_code == 401
    assert response.json() == INVALID


async def test_inactive_owner(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    headers = {"Authorization": f"bearer {created['token']}"}
    assert (await client.get(PATS, headers=headers)).status_code == 200
    deactivated = await client.patch(
        f"/api/users/{world.owner.uuid}/", json={"is_active": False}, headers=world.staff_headers
    )
    assert deactivated.status_code == 200
    response = await client.get(PATS, headers=headers)
    assert response.status_code == 401
    assert response.json() == INVALID


async def test_deactivation_revokes_for_good(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    headers = {"Authorization": f"Token {created['token']}"}
    user_path = f"/api/users/{world.owner.uuid}/"
    assert (await client.patch(user_path, json={"is_active": False}, headers=world.staff_headers)).status_code == 200
    assert (await client.patch(user_path, json={"is_active": True}, headers=world.staff_headers)).status_code == 200
    response = await client.get(PATS, headers=headers)
    assert response.status_code == 401
    assert response.json() == INVALID
    shown = (await client.get(f"{PATS}{created['uuid']}/", headers=world.staff_headers)).json()
    assert shown["is_active"] is False
