"""The one transaction style: a request (or a unit of work outside one) commits once, at its end.

Services never commit. A request handler's session is committed by :func:`commit_or_roll_back` when the response
starts: on a 2xx or 3xx status (advanced-alchemy's ``autocommit_include_redirects``), and rolled back on any other,
so a refused or failed request changes nothing. Work outside a request (CLI, background loops, middleware) runs in
``Runtime.session()``, which ends the same way through :func:`commit`.

What must happen only once the change is durable (dropping cached credentials, mirroring facts, telling the other
workers) is queued on the session with :func:`after_commit`; it runs right after the commit, before the response
is sent, and is dropped on a rollback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from advanced_alchemy.extensions.litestar._utils import get_aa_scope_state
from litestar.constants import HTTP_DISCONNECT, HTTP_RESPONSE_START
from litestar.types import BeforeMessageSendHookHandler, Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

AnySession = AsyncSession | async_scoped_session[AsyncSession]
_AFTER_COMMIT = "tokengate.after_commit"
_COMMIT_STATUSES = range(200, 400)
_SESSION_ENDS = {HTTP_RESPONSE_START, HTTP_DISCONNECT}


def after_commit(session: AnySession, action: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """Run ``action(*args)`` once ``session``'s transaction has committed; never if it rolls back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(partial(action, *args))


async def commit(session: AnySession) -> None:
    """Commit, then run the actions queued with :func:`after_commit`, in order."""
    await session.commit()
    for action in session.info.pop(_AFTER_COMMIT, []):
        await action()


async def roll_back(session: AnySession) -> None:
    """Roll back and drop the queued actions."""
    session.info.pop(_AFTER_COMMIT, None)
    await session.rollback()


def commit_or_roll_back(session_scope_key: str) -> BeforeMessageSendHookHandler:
    """The ``before_send`` handler ending each request's transaction (the session stored under the key).

    Unlike advanced-alchemy's own autocommit handler, a failed commit is raised, not logged: the client gets a
    500 from the server, never the 2xx of a change that did not happen.
    """

    async def handler(message: Message, scope: Scope) -> None:
        if message["type"] not in _SESSION_ENDS:
            return
        session: AsyncSession | None = get_aa_scope_state(scope, session_scope_key, pop=True)
        if session is None:
            return
        try:
            if message["type"] == HTTP_RESPONSE_START and message["status"] in _COMMIT_STATUSES:
                await commit(session)
            else:
                await roll_back(session)
        finally:
            await session.close()

    return handler
