"""Use slides a legacy token's idle expiry forward (debounced, batched) without touching ``updated_at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from httpx import AsyncClient

from service.runtime import Runtime
from service.security import sync as sync_module
from service.security import verifier as verifier_module
from tests.support.factories import auth, set_token_times, token_of, user_with_key


async def test_use_refreshes_expiry_but_not_updated_at(client: AsyncClient, runtime: Runtime) -> None:
    user, key = await user_with_key(runtime, "alice", token_lifetime=3600)
    long_ago = datetime.now(UTC) - timedelta(minutes=40)  # past half the lifetime: the next use refreshes
    await set_token_times(
        runtime, user, refreshed_at=long_ago, expires_at=long_ago + timedelta(hours=1), updated_at=long_ago
    )
    assert (await client.get(f"/api/users/{user.uuid}/", headers=auth(key))).status_code == 200
    await runtime.usage.flush()
    token = await token_of(runtime, user)
    assert token is not None
    assert token.refreshed_at > long_ago + timedelta(minutes=39)
    assert token.expires_at == token.refreshed_at + timedelta(hours=1)
    assert token.updated_at == long_ago


async def test_a_refresh_falling_due_between_quick_repeats_is_not_skipped(
    client: AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, key = await user_with_key(runtime, "alice", token_lifetime=3600)
    loaded = await token_of(runtime, user)
    assert loaded is not None
    due = loaded.refreshed_at.timestamp() + 1800  # half the lifetime
    fake_time = SimpleNamespace(time=lambda: clock)
    monkeypatch.setattr(verifier_module, "time", fake_time)
    monkeypatch.setattr(sync_module, "time", fake_time)
    clock = due - 0.2
    runtime.verifier.confirm(clock, 60.0)  # as a poll at that time would
    for _ in range(3):  # the second and third repeat the first: answered from the cache
        assert (await client.get(f"/api/users/{user.uuid}/", headers=auth(key))).status_code == 200
    clock = due + 0.1  # the entry is still fresh, but this use must move the window
    assert (await client.get(f"/api/users/{user.uuid}/", headers=auth(key))).status_code == 200
    await runtime.usage.flush()
    token = await token_of(runtime, user)
    assert token is not None
    assert token.refreshed_at.timestamp() == pytest.approx(due + 0.1, abs=1e-3)
    assert token.expires_at == token.refreshed_at + timedelta(hours=1)
