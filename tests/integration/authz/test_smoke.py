"""End-to-end: entities, role grants and revocation reach decisions at once."""

from __future__ import annotations

from httpx import AsyncClient

from service.runtime import Runtime
from tests.support.factories import auth, user_with_key


async def test_grant_check_revoke(client: AsyncClient, runtime: Runtime) -> None:
    _, staff_key = await user_with_key(runtime, "root", staff=True)
    alice, alice_key = await user_with_key(runtime, "alice")
    staff = auth(staff_key)
    customer = (await client.post("/api/entities/", json={"type": "customer", "name": "ACME"}, headers=staff)).json()
    project = (
        await client.post(
            "/api/entities/", json={"type": "project", "name": "P", "parent": customer["uuid"]}, headers=staff
        )
    ).json()
    resource = await client.post(
        "/api/entities/", json={"type": "resource", "name": "R", "parent": project["uuid"]}, headers=staff
    )
    assert resource.status_code == 201, resource.text
    grant = await client.post(
        "/api/role-assignments/",
        headers=staff,
        json={
            "user": str(alice.uuid),
            "role": "CUSTOMER.OWNER",
            "scope": {"type": "customer", "uuid": customer["uuid"]},
        },
    )
    assert grant.status_code == 201, grant.text
    check = {"permission": "RESOURCE.UPDATE", "entity": {"type": "resource", "uuid": resource.json()["uuid"]}}
    allowed = await client.post("/api/authz/check/", json=check, headers=auth(alice_key))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["allowed"] is True
    assert "CUSTOMER.OWNER" in allowed.json()["reason"]
    revoked = await client.delete(f"/api/role-assignments/{grant.json()['uuid']}/", headers=staff)
    assert revoked.status_code == 204
    denied = await client.post("/api/authz/check/", json=check, headers=auth(alice_key))
    assert denied.status_code == 404  # alice holds nothing near the resource any more: as if it did not exist
