"""Signed-in page clients over the in-process app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from litestar import Litestar

from service.runtime import Runtime
from tests.conftest import http_client, running
from tests.factories import make_entity, make_user

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


@pytest.fixture(name="people")
async def fx_people(runtime: Runtime) -> None:
    """alice (with a password) and root (staff); a customer Acme with a project Apollo."""
    await make_user(runtime, "alice", password=PASSWORD)
    await make_user(runtime, "root", password=PASSWORD, staff=True)
    acme = await make_entity(runtime, "customer", "Acme")
    await make_entity(runtime, "project", "Apollo", parent=acme)


@pytest.fixture(name="sign_in")
async def fx_sign_in(app: Litestar, people: None) -> AsyncIterator[SignIn]:
    """``await sign_in(username)``: a client whose page session belongs to that user."""
    clients: list[httpx.AsyncClient] = []
    async with running(app):

        async def sign_in(username: str) -> httpx.AsyncClient:
            client = http_client(app)
            clients.append(client)
            response = await post_form(
                client, "/ui/sign-in", "/ui/sign-in", {"username": username, "password": PASSWORD}
            )
            assert response.status_code == 302, response.text
            return client

        yield sign_in
        for client in clients:
            await client.aclose()
