"""Fixtures of the role-assignment, check and guard tests (``staff``, ``tree``, ``world``: tests/conftest.py)."""

from __future__ import annotations

import pytest

from service.runtime import Runtime
from tests.support.world import Caller, make_caller


@pytest.fixture(name="alice")
async def fx_alice(runtime: Runtime) -> Caller:
    """An ordinary user with a legacy token."""
    return await make_caller(runtime, "alice")
