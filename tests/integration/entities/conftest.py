"""Fixtures of the entity registry's route tests (``staff`` is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from service.runtime import Runtime
from tests.support.world import Caller, make_caller


@pytest.fixture(name="member")
async def fx_member(runtime: Runtime) -> Caller:
    """An ordinary user with a legacy token."""
    return await make_caller(runtime, "member")
