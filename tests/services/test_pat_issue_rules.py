"""The rules ``PatService.issue`` enforces, called directly: scopes, bindings, expiry, the per-user cap, networks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from service.pats.services import PatService
from service.runtime import Runtime
from service.users.models import User
from tests.support.factories import grant, make_user
from tests.support.services import pat_request, principal_of, refusal
from tests.support.world import World


async def owner_row(pats: PatService, user: User) -> User:
    """``user`` read on the service's session, as the PAT controller passes it."""
    return await pats.owner(principal_of(user))


# -- scopes ----------------------------------------------------------------------------------------------------
async def test_a_delegable_scope_the_owner_holds_is_issued(pats: PatService, world: World, runtime: Runtime) -> None:
    token, plaintext = await pats.issue(await owner_row(pats, world.owner), pat_request())
    assert token.is_active is True
    assert token.scopes == ["PROJECT.UPDATE"]
    assert token.token_hash == runtime.keyring.token_hash(plaintext)


async def test_the_plaintext_is_not_stored(pats: PatService, world: World) -> None:
    token, plaintext = await pats.issue(await owner_row(pats, world.owner), pat_request())
    assert plaintext not in (token.token_prefix, token.token_hash)
    assert plaintext.startswith(token.token_prefix)


async def test_repeated_scopes_are_stored_once_in_order(pats: PatService, world: World) -> None:
    request = pat_request(scopes=("PROJECT.UPDATE", "RESOURCE.LIST", "PROJECT.UPDATE"))
    token, _ = await pats.issue(await owner_row(pats, world.owner), request)
    assert token.scopes == ["PROJECT.UPDATE", "RESOURCE.LIST"]


async def test_a_scope_the_owner_does_not_hold_is_refused(
    pats: PatService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    member = await make_user(runtime, "member")
    await grant(runtime, member, "PROJECT.MEMBER", world.tree.web)
    errors = await refusal(session, pats.issue(await owner_row(pats, member), pat_request()))
    assert errors == {
        "scopes": ["You do not currently hold these permissions and cannot delegate them: ['PROJECT.UPDATE']"]
    }


async def test_a_never_delegable_scope_is_refused_even_to_its_holder(
    pats: PatService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    never = [name for name, spec in runtime.policy.permissions.items() if not spec.delegable]
    assert never, "the shipped policy declares a permission no token may carry"
    manager = await make_user(runtime, "manager")
    await grant(runtime, manager, "PROJECT.MANAGER", world.tree.web)
    errors = await refusal(session, pats.issue(await owner_row(pats, manager), pat_request(scopes=(never[0],))))
    assert errors == {"scopes": [f"These permissions can never be delegated to a token: {[never[0]]}"]}


async def test_a_global_scope_is_staff_only_in_waldurs_words(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    owner = await owner_row(pats, world.owner)
    errors = await refusal(session, pats.issue(owner, pat_request(scopes=("STAFF.ACCESS",))))
    assert errors == {"scopes": ["Only staff users can request the STAFF.ACCESS scope."]}


async def test_an_unknown_scope_is_named(pats: PatService, session: AsyncSession, world: World) -> None:
    owner = await owner_row(pats, world.owner)
    errors = await refusal(session, pats.issue(owner, pat_request(scopes=("PROJECT.UPDATE", "NO.SUCH"))))
    assert errors == {"scopes": ["Invalid scope(s): ['NO.SUCH']"]}


async def test_at_least_one_scope_is_required(pats: PatService, session: AsyncSession, world: World) -> None:
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), pat_request(scopes=())))
    assert errors == {"scopes": ["At least one scope is required."]}


async def test_a_blank_name_is_refused(pats: PatService, session: AsyncSession, world: World) -> None:
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), pat_request(name="   ")))
    assert errors == {"name": ["This field may not be blank."]}


# -- expiry ----------------------------------------------------------------------------------------------------
async def test_an_expiry_in_the_past_is_refused(pats: PatService, session: AsyncSession, world: World) -> None:
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), pat_request(days=-1)))
    assert errors == {"expires_at": ["Expiration must be in the future."]}


async def test_an_expiry_past_the_maximum_lifetime_is_refused(
    pats: PatService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    max_days = runtime.settings.tokens.pat_max_lifetime_days
    request = pat_request(days=max_days + 1 / 24)
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), request))
    assert errors == {"expires_at": [f"Expiration cannot exceed {max_days} days from now."]}


async def test_an_expiry_just_inside_the_maximum_lifetime_is_issued(
    pats: PatService, runtime: Runtime, world: World
) -> None:
    max_days = runtime.settings.tokens.pat_max_lifetime_days
    request = pat_request(days=max_days - 1 / 24)
    token, _ = await pats.issue(await owner_row(pats, world.owner), request)
    assert token.expires_at > datetime.now(UTC) + timedelta(days=max_days - 1)


# -- who may create them ---------------------------------------------------------------------------------------
async def test_the_per_user_cap_counts_active_tokens_only(
    pats: PatService, session: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    monkeypatch.setattr(runtime.settings.tokens, "pat_max_per_user", 2)
    owner = await owner_row(pats, world.owner)
    first, _ = await pats.issue(owner, pat_request(name="one"))
    await pats.issue(owner, pat_request(name="two"))
    await pats.revoke(first, principal_of(world.owner))
    await pats.issue(owner, pat_request(name="three"))  # the revoked one no longer counts
    errors = await refusal(session, pats.issue(owner, pat_request(name="four")))
    assert errors == {"non_field_errors": ["Maximum number of active tokens (2) reached."]}


async def test_a_user_without_the_flag_may_not_create(
    pats: PatService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    flagless = await make_user(runtime, "flagless", can_use_personal_access_tokens=False)
    await grant(runtime, flagless, "PROJECT.MANAGER", world.tree.web)
    errors = await refusal(session, pats.issue(await owner_row(pats, flagless), pat_request()))
    assert errors == {"non_field_errors": ["You are not allowed to create personal access tokens."]}


async def test_no_one_may_create_when_the_server_disables_them(
    pats: PatService, session: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    monkeypatch.setattr(runtime.settings.tokens, "pat_enabled", False)
    errors = await refusal(session, pats.issue(await owner_row(pats, world.staff), pat_request()))
    assert errors == {"non_field_errors": ["Personal access tokens are disabled on this server."]}


# -- bindings --------------------------------------------------------------------------------------------------
async def test_a_binding_where_the_owner_holds_the_scope_is_stored_once(pats: PatService, world: World) -> None:
    web = ("project", world.tree.web.uuid)
    token, _ = await pats.issue(await owner_row(pats, world.owner), pat_request(bindings=(web, web)))
    assert token.allowed_scopes == [{"type": "project", "uuid": world.project}]


async def test_a_binding_to_an_entity_the_owner_cannot_see_looks_absent(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    elsewhere = ("project", world.tree.billing.uuid)  # initech's: the owner holds nothing there
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), pat_request(bindings=(elsewhere,))))
    assert errors == {"allowed_scopes": [f"project with uuid {world.tree.billing.uuid} does not exist."]}


async def test_a_binding_naming_the_wrong_type_looks_absent(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    mistyped = ("resource", world.tree.web.uuid)  # web is a project
    request = pat_request(scopes=("RESOURCE.LIST",), bindings=(mistyped,))
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), request))
    assert errors == {"allowed_scopes": [f"resource with uuid {world.tree.web.uuid} does not exist."]}


async def test_a_binding_of_an_unknown_type_is_a_field_error(
    pats: PatService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    request = pat_request(bindings=(("galaxy", world.tree.web.uuid),))
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), request))
    expected = f"Unknown scope type 'galaxy'. Expected one of: {sorted(runtime.policy.entity_types)}."
    assert errors == {"allowed_scopes": [{"type": [expected]}]}


async def test_a_scope_that_cannot_bind_to_the_type_is_refused(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    request = pat_request(scopes=("CUSTOMER.UPDATE",), bindings=(("project", world.tree.web.uuid),))
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), request))
    assert errors == {"allowed_scopes": ["None of the requested scopes may be bound to a project."]}


async def test_a_binding_where_the_owner_holds_none_of_the_scopes_is_refused(
    pats: PatService, session: AsyncSession, runtime: Runtime, world: World
) -> None:
    manager = await make_user(runtime, "manager")
    await grant(runtime, manager, "PROJECT.MANAGER", world.tree.web)  # PROJECT.UPDATE on web
    await grant(runtime, manager, "PROJECT.MEMBER", world.tree.data)  # data is visible, without PROJECT.UPDATE
    request = pat_request(bindings=(("project", world.tree.data.uuid),))
    errors = await refusal(session, pats.issue(await owner_row(pats, manager), request))
    assert errors == {
        "allowed_scopes": [f"You do not hold any of the requested permissions on project {world.tree.data.uuid}."]
    }


async def test_a_global_scope_cannot_be_bound(pats: PatService, session: AsyncSession, world: World) -> None:
    request = pat_request(scopes=("STAFF.ACCESS",), bindings=(("project", world.tree.web.uuid),))
    errors = await refusal(session, pats.issue(await owner_row(pats, world.staff), request))
    assert list(errors) == ["allowed_scopes"]
    assert "those scopes are global" in errors["allowed_scopes"][0]


# -- networks --------------------------------------------------------------------------------------------------
async def test_networks_are_stored_canonical_and_once(pats: PatService, world: World) -> None:
    request = pat_request(networks=(" 10.0.0.1 ", "2001:DB8:0:0::/64", "10.0.0.1/32"))
    token, _ = await pats.issue(await owner_row(pats, world.owner), request)
    assert token.allowed_networks == ["10.0.0.1/32", "2001:db8::/64"]


async def test_a_network_with_host_bits_set_suggests_the_network(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    request = pat_request(networks=("10.0.0.1/24",))
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), request))
    assert errors == {"allowed_networks": ["10.0.0.1/24 has host bits set; use 10.0.0.0/24 instead."]}


async def test_a_network_allowing_every_address_is_refused(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    request = pat_request(networks=("0.0.0.0/0",))
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), request))
    assert errors == {"allowed_networks": ["0.0.0.0/0 allows every address; leave the list empty instead."]}


async def test_more_networks_than_configured_are_refused(
    pats: PatService, session: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    monkeypatch.setattr(runtime.settings.tokens, "pat_max_acl_entries", 2)
    request = pat_request(networks=("10.0.0.1", "10.0.0.2", "10.0.0.3"))
    errors = await refusal(session, pats.issue(await owner_row(pats, world.owner), request))
    assert errors == {"allowed_networks": ["A token can have at most 2 network ACL entries."]}
