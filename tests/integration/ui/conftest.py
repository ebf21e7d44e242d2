"""Signed-in page clients over the in-process app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar

from service.runtime import Runtime
from tests.support.app import http_client, running
from tests.support.factories import make_entity, make_user
from tests.support.ui import PASSWORD, SignIn, post_form


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
