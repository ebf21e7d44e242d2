"""``GET /api/policy/matrix/``, ``GET /api/policy/invariants/`` and ``policy explain`` against the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import msgspec
from sqlalchemy import update

from service.pats.models import PersonalAccessToken
from service.pats.schemas import AllowedScopeIn, PatCreate
from service.pats.services import PatService
from service.policy_tools.dbexplain import NotFoundError, Question, explain_from_database
from service.policy_tools.invariants import INVARIANTS_FILE, load_invariants
from service.policy_tools.matrix import build_matrix
from service.runtime import Runtime
from tests.support.factories import auth, grant, make_entity, make_user, user_with_key


async def test_matrix_for_any_authenticated_user(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, key = await user_with_key(runtime, "reader")
    response = await client.get("/api/policy/matrix/", headers=auth(key))
    assert response.status_code == 200
    body = response.json()
    assert body == msgspec.to_builtins(build_matrix(runtime.policy.rules))
    assert {"name": "project", "parents": ["customer"]} in body["entity_types"]
    owner = next(role for role in body["roles"] if role["name"] == "CUSTOMER.OWNER")
    assert owner["entity_type"] == "customer"
    assert "PROJECT.CREATE" in owner["permissions"]
    update = next(p for p in body["permissions"] if p["name"] == "PROJECT.UPDATE")
    assert update["bind_types"] == ["customer", "project"]
    assert update["delegation"] == "token"


async def test_matrix_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/policy/matrix/")
    assert response.status_code == 401
    bad = await client.get("/api/policy/matrix/", headers=auth("not-a-token"))
    assert (bad.status_code, bad.json()) == (401, {"detail": "Invalid token."})


async def test_matrix_is_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["paths"]["/api/policy/matrix"]["get"]["operationId"] == "PolicyMatrix"


async def test_invariants_of_the_running_policy(client: httpx.AsyncClient, runtime: Runtime) -> None:
    _, key = await user_with_key(runtime, "reviewer")
    response = await client.get("/api/policy/invariants/", headers=auth(key))
    assert response.status_code == 200
    body = response.json()
    shipped = load_invariants(Path(runtime.settings.policy_dir) / INVARIANTS_FILE)
    assert body["problem"] is None
    assert body["file"] == f"policies/{INVARIANTS_FILE}"
    assert [(i["name"], i["source"], i["status"], i["detail"]) for i in body["invariants"]] == [
        (invariant.name, f"policies/{INVARIANTS_FILE}:{invariant.line}", "proved", "") for invariant in shipped
    ]
    assert all(i["decisions"] > 0 for i in body["invariants"])
    again = await client.get("/api/policy/invariants/", headers=auth(key))
    assert again.json() == body


async def test_invariants_need_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/policy/invariants/", headers=auth("not-a-token"))
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["paths"]["/api/policy/invariants"]["get"]["operationId"] == "PolicyInvariants"


async def _world(runtime: Runtime) -> dict[str, str]:
    alice = await make_user(runtime, "alice")
    acme = await make_entity(runtime, "customer", "acme")
    apollo = await make_entity(runtime, "project", "apollo", parent=acme)
    vm1 = await make_entity(runtime, "resource", "vm1", parent=apollo)
    assignment = await grant(runtime, alice, "CUSTOMER.OWNER", acme)
    data = PatCreate(
        name="ci",
        scopes=["RESOURCE.LIST"],
        expires_at=datetime.now(UTC) + timedelta(days=30),
        allowed_scopes=[AllowedScopeIn(type="project", uuid=apollo.uuid)],
    )
    async with runtime.session() as session:
        token, _ = await PatService(session=session, runtime=runtime).issue(alice, data)
    return {
        "acme": str(acme.uuid),
        "apollo": str(apollo.uuid),
        "vm1": str(vm1.uuid),
        "assignment": str(assignment.uuid),
        "token": str(token.uuid),
    }


async def test_explain_a_user_from_the_database(runtime: Runtime) -> None:
    ids = await _world(runtime)
    lines = await explain_from_database(
        runtime, Question("RESOURCE.TERMINATE", ids["vm1"], datetime.now(UTC), username="alice")
    )
    assert lines[0] == f"ALLOW  alice  RESOURCE.TERMINATE  on vm1 [{ids['vm1']}] (resource)"
    assert lines[2] == (
        f"  ancestors: vm1 [{ids['vm1']}] (resource) <- apollo [{ids['apollo']}] (project) "
        f"<- acme [{ids['acme']}] (customer)"
    )
    granted = next(line for line in lines if "<- decided" in line)
    assert f"on acme [{ids['acme']}] (customer): CUSTOMER.OWNER (assignment {ids['assignment']}" in granted
    assert "[policies/roles.csv:31]" in granted
    assert lines[-2] == "  clause:    role"


async def test_explain_a_token_from_the_database(runtime: Runtime) -> None:
    ids = await _world(runtime)
    now = datetime.now(UTC)
    lines = await explain_from_database(runtime, Question("RESOURCE.LIST", ids["acme"], now, token_uuid=ids["token"]))
    assert lines[0] == f"DENY  alice via token 'ci' ({ids['token']})  RESOURCE.LIST  on acme [{ids['acme']}] (customer)"
    assert f"  token:     scopes RESOURCE.LIST; bound to project apollo [{ids['apollo']}]" in lines
    assert lines[-2] == "  clause:    token-binding"
    below = await explain_from_database(runtime, Question("RESOURCE.LIST", ids["vm1"], now, token_uuid=ids["token"]))
    assert below[0].startswith("ALLOW")
    scope = await explain_from_database(
        runtime, Question("RESOURCE.TERMINATE", ids["vm1"], now, token_uuid=ids["token"])
    )
    assert scope[-2] == "  clause:    token-scope"


async def _set_token_state(runtime: Runtime, token_uuid: str, **state: object) -> None:
    async with runtime.session() as session:
        await session.execute(
            update(PersonalAccessToken).where(PersonalAccessToken.uuid == UUID(token_uuid)).values(**state)
        )


async def _unusable_notes(runtime: Runtime, token_uuid: str, now: datetime) -> list[str]:
    lines = await explain_from_database(runtime, Question("RESOURCE.LIST", None, now, token_uuid=token_uuid))
    return [line for line in lines if line.startswith("note: this token is not usable now")]


async def test_explain_notes_a_token_out_of_use_but_not_one_in_its_rotation_grace(runtime: Runtime) -> None:
    ids = await _world(runtime)
    now = datetime.now(UTC)
    await _set_token_state(runtime, ids["token"], is_active=False, rotated_at=now, grace_until=now + timedelta(hours=1))
    assert await _unusable_notes(runtime, ids["token"], now) == []
    assert len(await _unusable_notes(runtime, ids["token"], now + timedelta(hours=2))) == 1


async def test_explain_unknown_subjects(runtime: Runtime) -> None:
    for kwargs in ({"username": "ghost"}, {"token_uuid": "00000000-0000-0000-0000-000000000000"}):
        try:
            await explain_from_database(runtime, Question("RESOURCE.LIST", None, datetime.now(UTC), **kwargs))
        except NotFoundError:
            continue
        raise AssertionError(kwargs)
