"""A request's changes are committed only with a success: a refused or failed request changes nothing.

A PAT creation that fails after its row was written (the audit event refused with a 4xx, or breaking with a 5xx)
must leave no token behind; the ``before_send`` handler that ends request transactions must raise, not answer,
when the commit fails; and work queued for after the commit runs only when there was one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from advanced_alchemy.extensions.litestar._utils import set_aa_scope_state
from litestar import Litestar
from sqlalchemy import func, select

from service.db.transaction import after_commit, commit_or_roll_back
from service.errors import ValidationError
from service.events.services import EventService
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from service.users.models import User
from tests.support.factories import auth, grant, make_entity, user_with_key


async def _pats(runtime: Runtime) -> int:
    async with runtime.session() as session:
        return int(await session.scalar(select(func.count()).select_from(PersonalAccessToken)) or 0)


@pytest.mark.parametrize(
    ("failure", "status"), [(ValidationError("refused"), 400), (RuntimeError("the audit log is broken"), 500)]
)
async def test_a_creation_failing_after_its_row_was_written_leaves_nothing(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, failure: Exception, status: int
) -> None:
    owner, key = await user_with_key(runtime, "owner")
    await grant(runtime, owner, "CUSTOMER.OWNER", await make_entity(runtime, "customer", "ACME"))
    body = {
        "name": "ci",
        "scopes": ["PROJECT.UPDATE"],
        "expires_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
    }

    async def fail(*_args: Any, **_kwargs: Any) -> None:  # the row is flushed by then
        raise failure

    monkeypatch.setattr(EventService, "record", fail)
    response = await client.post("/api/personal-access-tokens/", json=body, headers=auth(key))
    assert response.status_code == status
    assert await _pats(runtime) == 0
    monkeypatch.undo()
    assert (await client.post("/api/personal-access-tokens/", json=body, headers=auth(key))).status_code == 201
    assert await _pats(runtime) == 1


def _request_scope(app: Litestar) -> dict[str, Any]:
    return {"type": "http", "app": app, "state": {}}


async def _users_named(runtime: Runtime, username: str) -> int:
    async with runtime.session() as session:
        return int(await session.scalar(select(func.count()).where(User.username == username)) or 0)


@pytest.mark.parametrize(("status", "kept"), [(201, 1), (303, 1), (400, 0), (500, 0)])
async def test_the_request_transaction_commits_on_success_and_redirect_only(
    app: Litestar, runtime: Runtime, status: int, kept: int
) -> None:
    handler = commit_or_roll_back(runtime.alchemy.session_scope_key)
    session = runtime.alchemy.create_session_maker()()
    session.add(User(username=f"u{status}"))
    ran: list[str] = []

    async def action() -> None:
        ran.append("after")

    after_commit(session, action)
    scope = _request_scope(app)
    set_aa_scope_state(scope, runtime.alchemy.session_scope_key, session)
    await handler({"type": "http.response.start", "status": status, "headers": []}, scope)  # type: ignore[arg-type]
    assert await _users_named(runtime, f"u{status}") == kept
    assert ran == (["after"] if kept else [])


async def test_a_failed_commit_is_raised_and_runs_nothing_queued(
    app: Litestar, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = commit_or_roll_back(runtime.alchemy.session_scope_key)
    session = runtime.alchemy.create_session_maker()()
    ran: list[str] = []

    async def action() -> None:
        ran.append("after")

    async def broken_commit() -> None:
        raise ConnectionError("the database went away")

    after_commit(session, action)
    monkeypatch.setattr(session, "commit", broken_commit)
    scope = _request_scope(app)
    set_aa_scope_state(scope, runtime.alchemy.session_scope_key, session)
    with pytest.raises(ConnectionError):
        await handler({"type": "http.response.start", "status": 200, "headers": []}, scope)  # type: ignore[arg-type]
    assert ran == []


async def test_work_outside_a_request_runs_its_queued_actions_only_after_a_commit(runtime: Runtime) -> None:
    ran: list[str] = []

    async def action(name: str) -> None:
        ran.append(name)

    with pytest.raises(LookupError):
        async with runtime.session() as session:
            after_commit(session, action, "rolled back")
            raise LookupError
    async with runtime.session() as session:
        after_commit(session, action, "committed")
        assert ran == []
    assert ran == ["committed"]
