"""Helpers of the page tests: the seeded users' password, CSRF tokens, and form posts as a browser makes them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from service.entities.models import Entity
from service.runtime import Runtime
from tests.support.factories import find_user, grant

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')
SignIn = Callable[[str], Awaitable[httpx.AsyncClient]]


def csrf_of(html: str) -> str:
    """The CSRF token embedded in a page's forms."""
    match = CSRF_FIELD.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


async def post_form(client: httpx.AsyncClient, page: str, action: str, data: dict[str, object]) -> httpx.Response:
    """Open ``page``, then post ``data`` with its CSRF token to ``action``, as a browser would."""
    token = csrf_of((await client.get(page)).text)
    return await client.post(action, data={"_csrf_token": token, **data})


def errors_of(html: str, field: str) -> list[str]:
    """The messages shown under ``field``."""
    block = re.search(rf'<ul class="field-errors" id="{field}-errors">(.*?)</ul>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", block.group(1)) if block else []


def day(days: int) -> str:
    """The ISO date ``days`` from today (as a date field takes it)."""
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


async def manager(runtime: Runtime) -> str:
    """alice (of the ``people`` fixture) manages project Apollo; its UUID."""
    async with runtime.session() as session:
        apollo = (await session.execute(select(Entity).where(Entity.name == "Apollo"))).scalar_one()
    await grant(runtime, await find_user(runtime, "alice"), "PROJECT.MANAGER", apollo)
    return str(apollo.uuid)


async def create(client: httpx.AsyncClient, **fields: object) -> httpx.Response:
    """Submit the new-token form (default: PROJECT.UPDATE for 10 days) with ``fields`` over the defaults."""
    data = {"name": "ci", "scopes": ["PROJECT.UPDATE"], "expires_on": day(10), **fields}
    return await post_form(client, "/ui/tokens/new", "/ui/tokens/new", data)
