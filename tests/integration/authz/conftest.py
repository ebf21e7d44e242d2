"""Fixtures for the role-assignment, check and guard tests."""

from __future__ import annotations

import pytest

from service.runtime import Runtime
from tests.factories import auth, user_with_key
from tests.integration.authz.support import Caller, Tree, make_caller, make_tree


@pytest.fixture(name="staff")
async def fx_staff(runtime: Runtime) -> dict[str, str]:
    """Authorization headers of a staff user's legacy token."""
    _, key = await user_with_key(runtime, "root", staff=True)
    return auth(key)


@pytest.fixture(name="tree")
async def fx_tree(runtime: Runtime) -> Tree:
    """Two customers with projects, resources and an offering (see :class:`Tree`)."""
    return await make_tree(runtime)


@pytest.fixture(name="alice")
async def fx_alice(runtime: Runtime) -> Caller:
    """An ordinary user with a legacy token."""
    return await make_caller(runtime, "alice")
