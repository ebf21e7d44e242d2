"""``/api/personal-access-tokens/self/``: the presenting PAT describes and revokes itself."""

from __future__ import annotations

from httpx import AsyncClient

from service.runtime import Runtime
from tests.support.factories import auth
from tests.support.pats import PATS, check, create_pat
from tests.support.world import World

SELF = f"{PATS}self/"


async def test_a_pat_reads_itself_without_its_secret(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers, name="ci")
    other = await create_pat(client, world.owner_headers, name="other")
    response = await client.get(SELF, headers=auth(created["token"]))
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["uuid"] == created["uuid"]
    assert shown["name"] == "ci"
    assert shown["is_active"] is True
    assert "token" not in shown
    assert created["token"] not in response.text
    assert shown == (await client.get(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).json()
    assert (await client.get(SELF, headers=auth(other["token"]))).json()["uuid"] == other["uuid"]


async def test_a_pat_revokes_itself_and_nothing_else(client: AsyncClient, world: World, runtime: Runtime) -> None:
    created = await create_pat(client, world.owner_headers)
    other = await create_pat(client, world.owner_headers, name="other")
    assert (await client.delete(SELF, headers=auth(created["token"]))).status_code == 204
    refused = await check(client, created["token"], "PROJECT.UPDATE", "project", world.project)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid token."}
    assert (await check(client, other["token"], "PROJECT.UPDATE", "project", world.project)).status_code == 200
    listed = {item["uuid"]: item["is_active"] for item in (await client.get(PATS, headers=world.owner_headers)).json()}
    assert listed == {created["uuid"]: False, other["uuid"]: True}
    events = (
        await client.get("/api/events/", headers=world.owner_headers, params={"event_type": "pat_revoked"})
    ).json()
    assert [event["context"]["pat_uuid"] for event in events] == [created["uuid"].replace("-", "")]


async def test_other_credentials_have_no_self(client: AsyncClient, world: World) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, SELF, headers=world.owner_headers)
        assert response.status_code == 404
        assert response.json() == {"detail": "This request is not authenticated with a personal access token."}
    assert (await client.get(SELF)).status_code == 401


async def test_uuid_routes_still_answer_beside_self(client: AsyncClient, world: World) -> None:
    created = await create_pat(client, world.owner_headers)
    assert (await client.get(f"{PATS}{created['uuid']}/", headers=world.owner_headers)).status_code == 200
    assert (await client.get(f"{PATS}selfish/", headers=world.owner_headers)).status_code == 404
