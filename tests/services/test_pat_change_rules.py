"""What ``PatService`` does to existing tokens, called directly: rotation, revocation, network ACLs, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from service.errors import ActionError
from service.events.services import EventType
from service.pats.models import PersonalAccessToken
from service.pats.services import PatService
from service.runtime import Runtime
from tests.support.services import events_of, pat_request, principal_of, refusal
from tests.support.world import World


async def issued(pats: PatService, world: World, **request: Any) -> PersonalAccessToken:
    """A token of the world's owner (see :func:`tests.support.services.pat_request` for ``request``)."""
    token, _ = await pats.issue(await pats.owner(principal_of(world.owner)), pat_request(**request))
    return token


# -- rotation --------------------------------------------------------------------------------------------------
async def test_rotation_keeps_everything_but_the_secret(pats: PatService, world: World) -> None:
    old = await issued(pats, world, bindings=(("project", world.tree.web.uuid),), networks=("10.0.0.0/8",))
    limits = (old.name, list(old.scopes), list(old.allowed_scopes), list(old.allowed_networks), old.expires_at)
    new, _ = await pats.rotate(old, await pats.owner(principal_of(world.owner)))
    assert (new.name, new.scopes, new.allowed_scopes, new.allowed_networks, new.expires_at) == limits
    assert new.token_hash != old.token_hash


async def test_rotation_keeps_the_family_and_retires_the_old_token(pats: PatService, world: World) -> None:
    old = await issued(pats, world)
    new, _ = await pats.rotate(old, await pats.owner(principal_of(world.owner)))
    assert new.family_id == old.family_id
    assert old.is_active is False
    assert old.rotated_at is not None


async def test_rotation_without_grace_ends_the_old_token_at_once(pats: PatService, world: World) -> None:
    old = await issued(pats, world)
    await pats.rotate(old, await pats.owner(principal_of(world.owner)))
    assert old.grace_until is None


async def test_rotation_with_grace_keeps_the_old_token_for_that_long(
    pats: PatService, world: World, monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    monkeypatch.setattr(runtime.settings.tokens, "rotation_grace_seconds", 60)
    old = await issued(pats, world)
    before = datetime.now(UTC)
    await pats.rotate(old, await pats.owner(principal_of(world.owner)))
    assert old.grace_until is not None
    assert before + timedelta(seconds=59) <= old.grace_until <= datetime.now(UTC) + timedelta(seconds=60)


async def test_an_inactive_token_cannot_be_rotated(pats: PatService, world: World) -> None:
    old = await issued(pats, world)
    await pats.revoke(old, principal_of(world.owner))
    with pytest.raises(ActionError, match=r"^Cannot rotate an inactive token\.$"):
        await pats.rotate(old, await pats.owner(principal_of(world.owner)))


async def test_an_owner_who_lost_the_flag_cannot_rotate(pats: PatService, session: AsyncSession, world: World) -> None:
    old = await issued(pats, world)
    owner = await pats.owner(principal_of(world.owner))
    owner.can_use_personal_access_tokens = False
    errors = await refusal(session, pats.rotate(old, owner))
    assert errors == {"non_field_errors": ["You are not allowed to create personal access tokens."]}


# -- revocation ------------------------------------------------------------------------------------------------
async def test_revocation_deactivates_and_ends_any_grace(
    pats: PatService, world: World, monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    monkeypatch.setattr(runtime.settings.tokens, "rotation_grace_seconds", 60)
    old = await issued(pats, world)
    await pats.rotate(old, await pats.owner(principal_of(world.owner)))
    await pats.revoke(old, principal_of(world.staff))
    assert old.grace_until is None


async def test_revocation_records_who_revoked(pats: PatService, session: AsyncSession, world: World) -> None:
    token = await issued(pats, world)
    await pats.revoke(token, principal_of(world.staff))
    events = await events_of(session, EventType.PAT_REVOKED)
    assert [(event.user_id, event.actor_id) for event in events] == [(world.owner.id, world.staff.id)]


async def test_reuse_revokes_every_live_token_of_the_family(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    first = await issued(pats, world)
    second, _ = await pats.rotate(first, await pats.owner(principal_of(world.owner)))
    third, _ = await pats.rotate(second, await pats.owner(principal_of(world.owner)))
    unrelated = await issued(pats, world, name="unrelated")
    assert await pats.revoke_family(first, "192.0.2.1") == 1  # third: the only live one
    await session.refresh(third)
    await session.refresh(unrelated)
    assert third.is_active is False
    assert unrelated.is_active is True


async def test_a_replay_against_a_dead_family_records_nothing_more(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    first = await issued(pats, world)
    await pats.rotate(first, await pats.owner(principal_of(world.owner)))
    await pats.revoke_family(first, "192.0.2.1")
    assert await pats.revoke_family(first, "192.0.2.1") == 0
    assert len(await events_of(session, EventType.PAT_REUSE_DETECTED)) == 1


async def test_a_leak_report_revokes_only_the_live_tokens_named(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    named, revoked_already, other = [await issued(pats, world, name=name) for name in ("a", "b", "c")]
    await pats.revoke(revoked_already, principal_of(world.owner))
    count = await pats.revoke_leaked([named.token_hash, revoked_already.token_hash], "gist", "198.51.100.7")
    assert count == 1
    await session.refresh(other)
    assert other.is_active is True
    reports = await events_of(session, EventType.TOKEN_REPORTED_LEAKED)
    assert [event.context["pat_uuid"] for event in reports] == [named.uuid.hex]


# -- network ACL -----------------------------------------------------------------------------------------------
async def test_an_acl_change_replaces_the_list_canonically(pats: PatService, world: World) -> None:
    token = await issued(pats, world, networks=("10.0.0.0/8",))
    await pats.set_network_acl(token, ["192.0.2.7", "2001:DB8::/32"])
    assert token.allowed_networks == ["192.0.2.7/32", "2001:db8::/32"]


async def test_an_empty_acl_lifts_the_restriction(pats: PatService, world: World) -> None:
    token = await issued(pats, world, networks=("10.0.0.0/8",))
    await pats.set_network_acl(token, [])
    assert token.allowed_networks == []


async def test_the_acl_of_an_inactive_token_cannot_change(pats: PatService, world: World) -> None:
    token = await issued(pats, world)
    await pats.revoke(token, principal_of(world.owner))
    with pytest.raises(ActionError, match=r"^Cannot change the network ACL of an inactive token\.$"):
        await pats.set_network_acl(token, ["10.0.0.0/8"])


# -- expiry ----------------------------------------------------------------------------------------------------
async def test_the_sweep_deactivates_only_tokens_past_their_expiry(
    pats: PatService, session: AsyncSession, world: World
) -> None:
    due, current = await issued(pats, world, name="due"), await issued(pats, world, name="current")
    await session.execute(
        update(PersonalAccessToken)
        .where(PersonalAccessToken.id == due.id)
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    assert await pats.expire_due() == 1
    assert await pats.expire_due() == 0  # nothing is reported twice
    await session.refresh(current)
    assert current.is_active is True


async def test_a_token_within_a_near_notice_skips_the_farther_one(
    pats: PatService, session: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    monkeypatch.setattr(runtime.settings.tokens, "expiry_notice_days", [7, 1])
    await issued(pats, world, days=0.5)
    assert await pats.notify_expiring() == 1
    assert await pats.notify_expiring() == 0
    notices = await events_of(session, EventType.PAT_EXPIRING)
    assert [event.context["notice_days"] for event in notices] == [1]
