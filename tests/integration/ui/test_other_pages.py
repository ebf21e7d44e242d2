"""Activity, binding choices, explanations and staff pages."""

from __future__ import annotations

import re

from service.runtime import Runtime
from tests.support.factories import auth, find_user, make_entity, make_key
from tests.support.ui import SignIn, create, errors_of, manager, post_form


async def test_activity_is_mine_newest_first_and_paginated(sign_in: SignIn, runtime: Runtime) -> None:
    await manager(runtime)
    alice = await sign_in("alice")
    root = await sign_in("root")
    for number in range(26):
        await create(alice, name=f"t{number:02}")
        if number == 19:  # the most active tokens a person may hold
            listing = (await alice.get("/ui/tokens")).text
            for uuid in re.findall(r'data-token="([^"]+)"', listing):
                await post_form(alice, "/ui/tokens", f"/ui/tokens/{uuid}/revoke", {})
    await create(root, name="root's own", scopes=["STAFF.ACCESS"])
    first = (await alice.get("/ui/activity")).text
    assert "Page 1 of" in first
    assert 'rel="next"' in first
    messages = re.findall(r"Personal access token (t\d\d) has been created", first)
    assert messages[0] == "t25"  # newest first
    assert "root&#39;s own" not in first
    assert "root's own" not in first
    second = await alice.get("/ui/activity", params={"page": 2})
    assert second.status_code == 200
    assert 'rel="prev"' in second.text
    assert (await alice.get("/ui/activity", params={"page": 0})).status_code == 400


async def test_only_entities_the_token_could_be_bound_to_are_offered(sign_in: SignIn, runtime: Runtime) -> None:
    await manager(runtime)
    alice = await sign_in("alice")
    offered = (await alice.get("/ui/tokens/new")).text
    assert ">Apollo</label>" in offered
    assert ">Acme</label>" not in offered
    none = (await alice.get("/ui/tokens/new", params={"q": "zzz"})).text
    assert ">Apollo</label>" not in none
    assert "No entity you could bind to matches" in none


async def test_explaining_my_own_token(sign_in: SignIn, runtime: Runtime) -> None:
    apollo = await manager(runtime)
    alice = await sign_in("alice")
    await create(alice, allowed_scopes=[f"project:{apollo}"])
    uuid = re.search(r'data-token="([^"]+)"', (await alice.get("/ui/tokens")).text).group(1)  # type: ignore[union-attr]
    page = await alice.get(
        "/ui/policy/explain", params={"token": uuid, "permission": "PROJECT.UPDATE", "entity": apollo}
    )
    assert page.status_code == 200
    assert "ALLOW  alice via token" in page.text
    assert "token:     scopes PROJECT.UPDATE" in page.text
    wrong = await alice.get("/ui/policy/explain", params={"permission": "PROJECT.UPDATE", "entity": "nope"})
    assert wrong.status_code == 400
    assert errors_of(wrong.text, "entity") == ["Enter the entity&#39;s UUID."]


async def test_staff_errors_from_the_grant_service_sit_by_their_fields(sign_in: SignIn, runtime: Runtime) -> None:
    acme = await make_entity(runtime, "customer", "Globex")
    root = await sign_in("root")
    page = "/ui/staff/assignments"
    wrong_type = await post_form(
        root, page, page, {"username": "alice", "role": "PROJECT.MEMBER", "scope": f"customer:{acme.uuid}"}
    )
    assert wrong_type.status_code == 400
    assert errors_of(wrong_type.text, "scope") == [
        "Role PROJECT.MEMBER is held on entities of type &#39;project&#39;, not &#39;customer&#39;."
    ]
    granted = await post_form(
        root, page, page, {"username": "alice", "role": "CUSTOMER.OWNER", "scope": f"customer:{acme.uuid}"}
    )
    assert granted.status_code == 302
    again = await post_form(
        root, page, page, {"username": "alice", "role": "CUSTOMER.OWNER", "scope": f"customer:{acme.uuid}"}
    )
    assert errors_of(again.text, "role") == ["User alice already holds CUSTOMER.OWNER on this customer."]
    alice = await find_user(runtime, "alice")
    assert runtime.policy.holds(alice.id, False, "CUSTOMER.UPDATE", str(acme.uuid))
    listing = (await root.get(page, params={"user": "alice", "active": "yes"})).text
    assert "Globex" in listing
    tree = (await root.get("/ui/staff/entities", params={"q": "Apol"})).text
    assert "Apollo" in tree
    assert "Acme" in tree
    assert "Globex" not in tree
    users = (await root.get("/ui/staff/users", params={"q": "ROO"})).text
    assert ">root</th>" in users
    assert ">alice</th>" not in users


async def test_the_policy_page_shows_the_invariants_and_their_status_as_the_api(
    sign_in: SignIn, runtime: Runtime
) -> None:
    alice = await sign_in("alice")
    key = await make_key(runtime, await find_user(runtime, "alice"))
    api = (await alice.get("/api/policy/invariants/", headers=auth(key))).json()
    assert api["invariants"], "the shipped policy states invariants"
    page = (await alice.get("/ui/policy")).text
    for invariant in api["invariants"]:
        row = re.search(
            rf'<tr class="(ok|broken)" data-invariant="{re.escape(invariant["name"])}">(.*?)</tr>', page, re.S
        )
        assert row, invariant["name"]
        assert f"<strong>{invariant['status']}</strong>" in row.group(2)
        assert (row.group(1) == "ok") == (invariant["status"] == "proved")
