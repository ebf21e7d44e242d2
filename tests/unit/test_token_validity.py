"""Each token kind's "usable now" rule, in Python and in SQL, gives one verdict on every combination of states.

The grid: owner active or not (and, for PATs, allowed PATs or not); token active or not, rotated out or not;
expiry and grace period past, exactly now, in the future, or absent. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, select

from service.auth_tokens.models import AuthToken
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.security.credentials import find_credential
from service.security.principal import CredentialKind
from service.users.models import User

NOW = datetime.now(UTC).replace(microsecond=0)
MOMENTS = {"past": NOW - timedelta(hours=1), "now": NOW, "future": NOW + timedelta(hours=1)}


def _user(name: str, *, active: bool, may_use_pats: bool = True) -> User:
    return User(username=name, is_active=active, can_use_personal_access_tokens=may_use_pats)


async def _pat_grid(runtime: Runtime) -> list[tuple[PersonalAccessToken, User]]:
    """One PAT per state combination, owned by one of four owners; each with the owner it is judged against."""
    owners = [
        _user(f"owner-{active}-{may_use}", active=active, may_use_pats=may_use)
        for active, may_use in itertools.product((True, False), repeat=2)
    ]
    tokens = []
    async with runtime.session() as session:
        session.add_all(owners)
        await session.flush()
        for owner, active, expiry, grace, rotated in itertools.product(
            owners, (True, False), MOMENTS.values(), (None, *MOMENTS.values()), (None, NOW - timedelta(days=1))
        ):
            tokens.append(
                PersonalAccessToken(
                    user_id=owner.id,
                    name="grid",
                    token_prefix="tg_pat_",
                    token_hash=secrets.token_hex(32),
                    expires_at=expiry,
                    is_active=active,
                    grace_until=grace,
                    rotated_at=rotated,
                )
            )
        session.add_all(tokens)
    by_id = {owner.id: owner for owner in owners}
    return [(token, by_id[token.user_id]) for token in tokens]


async def _legacy_grid(runtime: Runtime) -> list[AuthToken]:
    """One legacy token per owner state and expiry (one token per user)."""
    async with runtime.session() as session:
        for number, (active, expiry) in enumerate(itertools.product((True, False), (None, *MOMENTS.values()))):
            user = _user(f"legacy-{number}", active=active)
            session.add(user)
            await session.flush()
            session.add(
                AuthToken(
                    user_id=user.id,
                    key_hash=secrets.token_hex(32),
                    key_prefix="grid",
                    key_encrypted=b"unused",
                    refreshed_at=NOW - timedelta(hours=2),
                    expires_at=expiry,
                )
            )
    async with runtime.session() as session:
        return list(await session.scalars(select(AuthToken)))  # with their owners (joined)


async def _lookup(runtime: Runtime, kind: CredentialKind, token_hash: str) -> Row[Any]:
    """The row the verifier's cache-miss path reads for ``token_hash`` at ``NOW``."""
    row = await find_credential(runtime.alchemy.get_engine(), kind, token_hash, NOW)
    assert row is not None
    return row


async def _sql_pat_verdicts(runtime: Runtime) -> dict[int, bool]:
    async with runtime.session() as session:
        rows = await session.execute(
            select(PersonalAccessToken.id, PersonalAccessToken.usable_clause(NOW)).join(
                User, User.id == PersonalAccessToken.user_id
            )
        )
        return {token_id: bool(usable) for token_id, usable in rows}


async def test_pat_rule_in_python_and_in_sql_agree(runtime: Runtime) -> None:
    grid = await _pat_grid(runtime)
    in_python = {token.id: token.is_usable(owner, NOW) for token, owner in grid}
    assert await _sql_pat_verdicts(runtime) == in_python


async def test_pat_grid_holds_usable_and_unusable_tokens(runtime: Runtime) -> None:
    grid = await _pat_grid(runtime)
    assert {token.is_usable(owner, NOW) for token, owner in grid} == {True, False}


async def test_pat_verdict_of_the_verification_lookup_is_the_rule(runtime: Runtime) -> None:
    grid = await _pat_grid(runtime)
    looked_up = {
        token.id: bool((await _lookup(runtime, CredentialKind.PAT, token.token_hash)).usable) for token, _ in grid
    }
    assert looked_up == {token.id: token.is_usable(owner, NOW) for token, owner in grid}


async def test_a_pat_is_retired_once_rotated_out_and_past_its_grace(runtime: Runtime) -> None:
    grid = await _pat_grid(runtime)
    retired = {
        token.id: bool((await _lookup(runtime, CredentialKind.PAT, token.token_hash)).retired) for token, _ in grid
    }
    expected = {
        token.id: token.rotated_at is not None and (token.grace_until is None or token.grace_until <= NOW)
        for token, _ in grid
    }
    assert retired == expected


async def test_legacy_rule_in_python_and_in_sql_agree(runtime: Runtime) -> None:
    tokens = await _legacy_grid(runtime)
    async with runtime.session() as session:
        rows = await session.execute(select(AuthToken.id, AuthToken.usable_clause(NOW)).join(AuthToken.user))
        in_sql = {token_id: bool(usable) for token_id, usable in rows}
    assert in_sql == {token.id: token.is_usable(NOW) for token in tokens}


async def test_legacy_verdict_of_the_verification_lookup_is_the_rule(runtime: Runtime) -> None:
    tokens = await _legacy_grid(runtime)
    looked_up = {
        token.id: bool((await _lookup(runtime, CredentialKind.TOKEN, token.key_hash)).usable) for token in tokens
    }
    assert looked_up == {token.id: token.is_usable(NOW) for token in tokens}


async def test_legacy_grid_holds_usable_and_unusable_tokens(runtime: Runtime) -> None:
    tokens = await _legacy_grid(runtime)
    assert {token.is_usable(NOW) for token in tokens} == {True, False}
