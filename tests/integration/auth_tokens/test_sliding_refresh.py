"""Use slides a legacy token's idle expiry forward (debounced, batched) without touching ``updated_at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpx import AsyncClient

from service.runtime import Runtime
from tests.factories import auth, set_token_times, token_of, user_with_key


async def test_use_refreshes_expiry_but_not_updated_at(client: AsyncClient, runtime: Runtime) -> None:
    user, key = await user_with_key(runtime, "alice", token_lifetime=3600)
    long_ago = datetime.now(UTC) - timedelta(minutes=40)  # past half the lifetime: the next use refreshes
    await set_token_times(runtime, user, refreshed_at=long_ago, expires_at=long_ago + timedelta(hours=1),
                          updated_at=long_ago)
    assert (await client.get(f"/api/users/{user.uuid}/", headers=auth(key))).status_code == 200
    await runtime.usage.flush()
    token = await token_of(runtime, user)
    assert token is not None
    assert token.refreshed_at > long_ago + timedelta(minutes=39)
    assert token.expires_at == token.refreshed_at + timedelta(hours=1)
    assert token.updated_at == long_ago
