"""Fixtures for the entity registry's route tests."""

from __future__ import annotations

import pytest

from service.runtime import Runtime
from tests.factories import auth, user_with_key


@pytest.fixture(name="staff")
async def fx_staff(runtime: Runtime) -> dict[str, str]:
    """Authorization headers of a staff user's legacy token."""
    _, key = await user_with_key(runtime, "root", staff=True)
    return auth(key)


@pytest.fixture(name="member")
async def fx_member(runtime: Runtime) -> dict[str, str]:
    """Authorization headers of an ordinary user's legacy token."""
    _, key = await user_with_key(runtime, "member")
    return auth(key)
