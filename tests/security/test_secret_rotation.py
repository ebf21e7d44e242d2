"""Rotating the server secret: with the old one in ``previous_secrets`` issued tokens keep working and move over."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from litestar import Litestar
from sqlalchemy import select

from service.app import create_app
from service.auth_tokens.models import AuthToken
from service.pats.models import PersonalAccessToken
from service.runtime import Runtime
from tests.support.app import http_client, make_settings, reset_database, running
from tests.support.factories import auth, grant, make_entity, make_key, user_with_key

OLD, NEW = "old-secret-" + "o" * 40, "new-secret-" + "n" * 40


@asynccontextmanager
async def serving(url: str, tmp: Path, secret: str, *previous: str) -> AsyncIterator[tuple[Litestar, Runtime]]:
    settings = make_settings(
        url, tmp, TOKENGATE_SECURITY__SECRET=secret, TOKENGATE_SECURITY__PREVIOUS_SECRETS=json.dumps(list(previous))
    )
    app = create_app(settings)
    try:
        async with running(app):
            yield app, app.state.runtime
    finally:
        await app.state.runtime.alchemy.get_engine().dispose()


async def _works(app: Litestar, token: str) -> bool:
    async with http_client(app) as client:
        response = await client.get("/api/personal-access-tokens/", headers=auth(token))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def _stored_hashes(runtime: Runtime) -> set[str]:
    async with runtime.session() as session:
        return set(await session.scalars(select(AuthToken.key_hash))) | set(
            await session.scalars(select(PersonalAccessToken.token_hash))
        )


async def test_tokens_survive_a_secret_rotation(database_url: str, tmp_path: Path) -> None:
    async with serving(database_url, tmp_path, OLD) as (app, runtime):
        owner, key = await user_with_key(runtime, "rotor")
        _, idle_key = await user_with_key(runtime, "idle")  # not used while the rotation lasts
        await grant(runtime, owner, "CUSTOMER.OWNER", await make_entity(runtime, "customer", "ACME"))
        async with http_client(app) as client:
            expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
            body = {"name": "ci", "scopes": ["PROJECT.UPDATE"], "expires_at": expires}
            created = await client.post("/api/personal-access-tokens/", json=body, headers=auth(key))
        assert created.status_code == 201, created.text
        pat = created.json()["token"]
    try:
        async with serving(database_url, tmp_path, NEW) as (app, _):  # the old secret forgotten: nothing works
            assert not await _works(app, key)
            assert not await _works(app, pat)
        async with serving(database_url, tmp_path, NEW, OLD) as (app, runtime):
            assert await _works(app, key)
            assert await _works(app, pat)
            assert await make_key(runtime, owner) == key  # login hands out the same key, now encrypted anew
            hashes = await _stored_hashes(runtime)
            assert runtime.keyring.token_hash(key) in hashes
            assert runtime.keyring.token_hash(pat) in hashes
        async with serving(database_url, tmp_path, NEW) as (app, runtime):  # the rotation is over
            assert await _works(app, key)
            assert await _works(app, pat)
            assert await make_key(runtime, owner) == key
            assert not await _works(app, idle_key)  # made under the old secret and not used during the rotation
    finally:
        async with serving(database_url, tmp_path, NEW) as (_, runtime):
            await reset_database(runtime)
