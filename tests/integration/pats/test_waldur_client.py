"""Every ``personal_access_tokens_*`` function of the published ``waldur-api-client`` 8.1.3, unmodified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from httpx import AsyncClient
from litestar import Litestar
from waldur_api_client.api.personal_access_tokens import (
    personal_access_tokens_available_binding_targets_count,
    personal_access_tokens_available_binding_targets_list,
    personal_access_tokens_available_scopes_count,
    personal_access_tokens_available_scopes_list,
    personal_access_tokens_count,
    personal_access_tokens_create,
    personal_access_tokens_destroy,
    personal_access_tokens_list,
    personal_access_tokens_retrieve,
    personal_access_tokens_rotate,
    personal_access_tokens_set_network_acl,
)
from waldur_api_client.errors import UnexpectedStatus
from waldur_api_client.models import (
    AllowedScopeInputRequest,
    AvailableBindingTarget,
    AvailableScope,
    PersonalAccessToken,
    PersonalAccessTokenCreated,
    PersonalAccessTokenCreateRequest,
    PersonalAccessTokenNetworkAclRequest,
)

from service.runtime import Runtime
from tests.support.factories import auth
from tests.support.pats import PATS, check, count_pats, use_token, waldur
from tests.support.world import World, key_of


def request(
    name: str = "ci", scopes: tuple[str, ...] = ("PROJECT.UPDATE",), days: float = 30, **extra: object
) -> PersonalAccessTokenCreateRequest:
    return PersonalAccessTokenCreateRequest(
        name=name, scopes=list(scopes), expires_at=datetime.now(UTC) + timedelta(days=days), **extra
    )


async def test_create_use_list_retrieve_count_acl_rotate_destroy(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    owner = waldur(app, key_of(world.owner_headers))
    body = request(
        "deploy",
        ("PROJECT.UPDATE", "RESOURCE.LIST"),
        allowed_scopes=[AllowedScopeInputRequest(type_="project", uuid=UUID(world.project))],
        allowed_networks=[" 127.0.0.1 ", "10.0.0.0/8", "2001:DB8::/32"],
    )
    detailed = await personal_access_tokens_create.asyncio_detailed(client=owner, body=body)
    assert detailed.status_code == 201
    assert detailed.headers["cache-control"] == "no-store"
    created = detailed.parsed
    assert isinstance(created, PersonalAccessTokenCreated)
    assert created.token.startswith("w_")
    assert created.name == "deploy"
    assert created.scopes == ["PROJECT.UPDATE", "RESOURCE.LIST"]
    assert [(s.type_, str(s.uuid), s.name) for s in created.allowed_scopes] == [
        ("project", world.project, world.tree.web.name)
    ]
    assert created.allowed_networks == ["127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32"]
    assert abs(created.expires_at - body.expires_at) < timedelta(seconds=1)

    plain = await personal_access_tokens_create.asyncio(client=owner, body=request("plain"))
    assert isinstance(plain, PersonalAccessTokenCreated)
    assert plain.allowed_scopes == []
    assert plain.allowed_networks == []

    # the client cannot parse a never-used token (see docs/waldur-apis.md), so both are used first
    await use_token(client, runtime, created.token)
    await use_token(client, runtime, plain.token)

    listed = await personal_access_tokens_list.asyncio(client=owner)
    assert listed is not None
    assert all(isinstance(item, PersonalAccessToken) for item in listed)
    assert [item.uuid for item in listed] == [plain.uuid, created.uuid]  # newest first
    first = listed[1]
    assert first.token_prefix == created.token[:21]
    assert first.is_active
    assert first.use_count == 1
    assert first.last_used_ip == "127.0.0.1"
    assert first.additional_keys == []  # no field the client does not know (no token, no hash)
    page = await personal_access_tokens_list.asyncio_detailed(client=owner, page=2, page_size=1)
    assert page.status_code == 200
    assert [item.uuid for item in page.parsed or []] == [created.uuid]
    assert page.headers["x-result-count"] == "2"
    assert await personal_access_tokens_count.asyncio(client=owner) == 2
    counted = await personal_access_tokens_count.asyncio_detailed(client=owner)
    assert counted.status_code == 200
    assert counted.parsed == 2
    assert counted.content == b""

    retrieved = await personal_access_tokens_retrieve.asyncio(created.uuid, client=owner)
    assert isinstance(retrieved, PersonalAccessToken)
    assert retrieved.allowed_networks == created.allowed_networks
    assert retrieved.scopes == created.scopes
    assert (await personal_access_tokens_retrieve.asyncio_detailed(created.uuid, client=owner)).status_code == 200

    narrowed = await personal_access_tokens_set_network_acl.asyncio(
        created.uuid, client=owner, body=PersonalAccessTokenNetworkAclRequest(allowed_networks=["192.0.2.7"])
    )
    assert isinstance(narrowed, PersonalAccessToken)
    assert narrowed.allowed_networks == ["192.0.2.7/32"]
    refused = await check(client, created.token, "PROJECT.UPDATE", "project", world.project)
    assert refused.status_code == 401  # 127.0.0.1 is no longer allowed
    cleared = await personal_access_tokens_set_network_acl.asyncio_detailed(
        created.uuid, client=owner, body=PersonalAccessTokenNetworkAclRequest(allowed_networks=[])
    )
    assert cleared.status_code == 200
    assert cleared.parsed is not None
    assert cleared.parsed.allowed_networks == []
    assert (await check(client, created.token, "PROJECT.UPDATE", "project", world.project)).json()["allowed"]

    rotated = await personal_access_tokens_rotate.asyncio(created.uuid, client=owner)
    assert isinstance(rotated, PersonalAccessTokenCreated)
    assert rotated.uuid != created.uuid
    assert rotated.token != created.token
    assert (rotated.name, rotated.scopes, rotated.expires_at) == (created.name, created.scopes, created.expires_at)
    assert [(s.type_, s.uuid) for s in rotated.allowed_scopes] == [("project", UUID(world.project))]
    again = await personal_access_tokens_rotate.asyncio_detailed(plain.uuid, client=owner)
    assert again.status_code == 201
    assert again.headers["cache-control"] == "no-store"
    assert isinstance(again.parsed, PersonalAccessTokenCreated)
    assert await personal_access_tokens_count.asyncio(client=owner) == 4

    await use_token(client, runtime, rotated.token)
    destroyed = await personal_access_tokens_destroy.asyncio_detailed(rotated.uuid, client=owner)
    assert destroyed.status_code == 204
    assert destroyed.parsed is None
    assert (await check(client, rotated.token, "PROJECT.UPDATE", "project", world.project)).status_code == 401
    await use_token(client, runtime, again.parsed.token)
    after = {item.uuid: item.is_active for item in await personal_access_tokens_list.asyncio(client=owner) or []}
    assert after == {again.parsed.uuid: True, rotated.uuid: False, plain.uuid: False, created.uuid: False}


async def test_available_scopes_and_binding_targets(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    owner = waldur(app, key_of(world.owner_headers))
    expected = runtime.policy.delegable_scopes(world.owner.id, is_staff=False)
    scopes = await personal_access_tokens_available_scopes_list.asyncio(client=owner, page_size=100)
    assert scopes is not None
    assert all(isinstance(item, AvailableScope) for item in scopes)
    assert [item.permission for item in scopes] == expected
    assert await personal_access_tokens_available_scopes_count.asyncio(client=owner) == len(expected)
    first_page = await personal_access_tokens_available_scopes_list.asyncio_detailed(client=owner, page_size=5)
    assert [item.permission for item in first_page.parsed or []] == expected[:5]
    assert first_page.headers["x-result-count"] == str(len(expected))
    counted = await personal_access_tokens_available_scopes_count.asyncio_detailed(client=owner)
    assert counted.status_code == 200
    assert counted.parsed == len(expected)

    targets = await personal_access_tokens_available_binding_targets_list.asyncio(client=owner, page_size=100)
    assert targets is not None
    assert all(isinstance(item, AvailableBindingTarget) for item in targets)
    assert {item.permission: item.types for item in targets} == runtime.policy.binding_targets(world.owner.id, False)
    total = await personal_access_tokens_available_binding_targets_count.asyncio(client=owner)
    assert total == len(targets)
    detailed = await personal_access_tokens_available_binding_targets_list.asyncio_detailed(
        client=owner, page=2, page_size=3
    )
    assert [item.permission for item in detailed.parsed or []] == [item.permission for item in targets[3:6]]
    counted = await personal_access_tokens_available_binding_targets_count.asyncio_detailed(client=owner)
    assert counted.status_code == 200
    assert counted.parsed == total


async def test_client_sees_the_services_errors(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    owner = waldur(app, key_of(world.owner_headers))
    with pytest.raises(UnexpectedStatus) as bad:
        await personal_access_tokens_create.asyncio(client=owner, body=request(scopes=("NOPE",)))
    assert bad.value.status_code == 400
    assert b"Invalid scope(s): ['NOPE']" in bad.value.content
    with pytest.raises(UnexpectedStatus) as missing:
        await personal_access_tokens_retrieve.asyncio(UUID(int=1), client=owner)
    assert missing.value.status_code == 404
    assert await count_pats(runtime, world.owner) == 0

    created = await personal_access_tokens_create.asyncio(client=owner, body=request())
    assert created is not None
    as_pat = waldur(app, created.token)
    with pytest.raises(UnexpectedStatus) as forbidden:
        await personal_access_tokens_rotate.asyncio(created.uuid, client=as_pat)
    assert forbidden.value.status_code == 403
    with pytest.raises(UnexpectedStatus) as denied:
        await personal_access_tokens_destroy.asyncio_detailed(created.uuid, client=as_pat)
    assert denied.value.status_code == 403
    assert await personal_access_tokens_count.asyncio(client=as_pat) == 1  # a PAT may list


async def test_never_used_token_has_null_usage_which_the_client_cannot_parse(
    client: AsyncClient, app: Litestar, world: World
) -> None:
    owner = waldur(app, key_of(world.owner_headers))
    created = await personal_access_tokens_create.asyncio(client=owner, body=request())
    assert created is not None
    raw = (await client.get(f"{PATS}{created.uuid}/", headers=world.owner_headers)).json()
    assert (raw["last_used_at"], raw["last_used_ip"], raw["use_count"]) == (None, None, 0)
    listed = (await client.get(PATS, headers=world.owner_headers)).json()
    assert (listed[0]["last_used_at"], listed[0]["last_used_ip"]) == (None, None)
    # the published client's known defect: last_used_at/last_used_ip typed non-null
    with pytest.raises(TypeError):
        await personal_access_tokens_retrieve.asyncio(created.uuid, client=owner)


async def test_staff_client_lists_everyones_tokens(
    client: AsyncClient, app: Litestar, world: World, runtime: Runtime
) -> None:
    owner = waldur(app, key_of(world.owner_headers))
    created = await personal_access_tokens_create.asyncio(client=owner, body=request())
    assert created is not None
    await use_token(client, runtime, created.token)
    staff = waldur(app, key_of(world.staff_headers))
    assert [item.uuid for item in await personal_access_tokens_list.asyncio(client=staff) or []] == [created.uuid]
    assert await personal_access_tokens_count.asyncio(client=staff) == 1
    retrieved = await personal_access_tokens_retrieve.asyncio(created.uuid, client=staff)
    assert retrieved is not None
    assert retrieved.name == "ci"
    assert (await client.get(PATS, headers=auth(created.token))).status_code == 200
