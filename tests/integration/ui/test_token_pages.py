"""Token pages: the API's errors next to their fields, copy once, rotate, networks, and what others may not see."""

from __future__ import annotations

import re

import pytest

from service.crypto import display_prefix
from service.runtime import Runtime
from service.ui import tokens as token_pages
from tests.support.ui import SignIn, create, day, errors_of, manager, post_form

TOKEN_VALUE = re.compile(r'id="plaintext" class="secret" readonly value="([^"]+)"')


async def test_the_services_errors_are_shown_next_to_their_fields(sign_in: SignIn, runtime: Runtime) -> None:
    await manager(runtime)
    client = await sign_in("alice")
    response = await create(
        client, name=" ", scopes=["STAFF.ACCESS"], expires_on=day(400), allowed_networks="10.0.0.300"
    )
    assert response.status_code == 400
    html = response.text
    assert errors_of(html, "name") == ["This field may not be blank."]
    assert errors_of(html, "scopes") == ["Only staff users can request the STAFF.ACCESS scope."]
    assert errors_of(html, "expires_at") == ["Expiration cannot exceed 365 days from now."]
    assert errors_of(html, "allowed_networks")
    assert 'aria-describedby="name-errors"' in html
    assert (await client.get("/ui/tokens")).text.count("<tr data-token") == 0


async def test_a_binding_the_owner_cannot_make_is_refused_under_its_field(sign_in: SignIn, runtime: Runtime) -> None:
    await manager(runtime)
    client = await sign_in("alice")
    response = await create(client, allowed_scopes=["project:00000000-0000-0000-0000-000000000001"])
    assert response.status_code == 400
    assert errors_of(response.text, "allowed_scopes") == [
        "project with uuid 00000000-0000-0000-0000-000000000001 does not exist."
    ]
    garbled = await create(client, allowed_scopes=["project:not-a-uuid"])
    assert garbled.status_code == 400
    assert errors_of(garbled.text, "allowed_scopes")


async def test_the_token_is_shown_once_then_only_its_prefix(sign_in: SignIn, runtime: Runtime) -> None:
    apollo = await manager(runtime)
    client = await sign_in("alice")
    response = await create(client, allowed_scopes=[f"project:{apollo}"])
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    plaintext = TOKEN_VALUE.search(response.text).group(1)  # type: ignore[union-attr]
    listing = await client.get("/ui/tokens")
    assert plaintext not in listing.text
    assert f"<code>{display_prefix(plaintext)}…</code>" in listing.text
    assert "project: Apollo" in listing.text
    for cookie in client.cookies.jar:
        assert plaintext not in (cookie.value or "")


async def test_rotation_shows_the_new_token_once_and_retires_the_old(sign_in: SignIn, runtime: Runtime) -> None:
    await manager(runtime)
    client = await sign_in("alice")
    first = TOKEN_VALUE.search((await create(client)).text).group(1)  # type: ignore[union-attr]
    uuid = re.search(r'data-token="([^"]+)"', (await client.get("/ui/tokens")).text).group(1)  # type: ignore[union-attr]
    rotated = await post_form(client, f"/ui/tokens/{uuid}/rotate", f"/ui/tokens/{uuid}/rotate", {})
    assert rotated.status_code == 201
    second = TOKEN_VALUE.search(rotated.text).group(1)  # type: ignore[union-attr]
    assert second != first
    assert "The previous token no longer works." in rotated.text
    check = {"permission": "PROJECT.UPDATE"}
    assert (
        await client.post("/api/authz/check/", json=check, headers={"Authorization": f"Token {second}"})
    ).status_code == 200
    # last: presenting a rotated-out token also revokes its whole rotation family (reuse detection)
    assert (
        await client.post("/api/authz/check/", json=check, headers={"Authorization": f"Token {first}"})
    ).status_code == 401


async def test_networks_are_edited_with_the_services_errors(sign_in: SignIn, runtime: Runtime) -> None:
    await manager(runtime)
    client = await sign_in("alice")
    await create(client)
    uuid = re.search(r'data-token="([^"]+)"', (await client.get("/ui/tokens")).text).group(1)  # type: ignore[union-attr]
    page = f"/ui/tokens/{uuid}/networks"
    bad = await post_form(client, page, page, {"allowed_networks": "not a network"})
    assert bad.status_code == 400
    assert errors_of(bad.text, "allowed_networks")
    good = await post_form(client, page, page, {"allowed_networks": "192.0.2.0/24\n2001:db8::/32"})
    assert good.status_code == 302
    listing = (await client.get("/ui/tokens")).text
    assert "192.0.2.0/24" in listing
    assert "2001:db8::/32" in listing


async def test_another_persons_token_is_not_found(sign_in: SignIn, runtime: Runtime) -> None:
    await manager(runtime)
    alice = await sign_in("alice")
    await create(alice)
    uuid = re.search(r'data-token="([^"]+)"', (await alice.get("/ui/tokens")).text).group(1)  # type: ignore[union-attr]
    root = await sign_in("root")
    assert (await root.get(f"/ui/tokens/{uuid}/revoke")).status_code == 404
    refused = await post_form(root, "/ui/tokens", f"/ui/tokens/{uuid}/revoke", {})
    assert refused.status_code == 404
    assert '<span class="state state-active">' in (await alice.get("/ui/tokens")).text
    explained = await root.get("/ui/policy/explain", params={"token": uuid, "permission": "PROJECT.UPDATE"})
    assert explained.status_code == 200  # staff may explain anyone's token
    others = await alice.get("/ui/policy/explain", params={"username": "root", "permission": "PROJECT.UPDATE"})
    assert others.status_code == 400
    assert errors_of(others.text, "username") == ["You may explain decisions for yourself and your own tokens only."]


async def test_staff_pages_are_for_staff(sign_in: SignIn) -> None:
    alice = await sign_in("alice")
    for path in ["/ui/staff/users", "/ui/staff/entities", "/ui/staff/assignments"]:
        assert (await alice.get(path)).status_code == 403
    refused = await post_form(
        alice, "/ui/tokens", "/ui/staff/assignments", {"username": "alice", "role": "CUSTOMER.OWNER"}
    )
    assert refused.status_code == 403
    root = await sign_in("root")
    assert (await root.get("/ui/staff/assignments")).status_code == 200


async def test_every_active_token_is_listed_however_many_were_revoked_since(
    sign_in: SignIn, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_pages, "LIST_LIMIT", 3)
    await manager(runtime)
    client = await sign_in("alice")
    await create(client, name="the old one")
    for number in range(4):
        await create(client, name=f"gone{number}")
        uuid = re.search(r'data-token="([^"]+)"', (await client.get("/ui/tokens")).text).group(1)  # type: ignore[union-attr]
        await post_form(client, "/ui/tokens", f"/ui/tokens/{uuid}/revoke", {})
    listing = (await client.get("/ui/tokens")).text
    active = listing.split('id="h-active"')[1].split('id="h-expired"')[0]
    assert "the old one" in active
    assert listing.count('<span class="state state-revoked">') == 3
    assert "the 3 newest of 4 are listed" in listing
