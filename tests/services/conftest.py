"""Fixtures of the service-level tests: each domain service on the ``session`` of tests/conftest.py."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth_tokens.services import AuthTokenService
from service.authz.services import RoleAssignmentService
from service.entities.services import EntityService
from service.pats.services import PatService
from service.runtime import Runtime


@pytest.fixture(name="pats")
def fx_pats(session: AsyncSession, runtime: Runtime) -> PatService:
    return PatService(session=session, runtime=runtime)


@pytest.fixture(name="roles")
def fx_roles(session: AsyncSession, runtime: Runtime) -> RoleAssignmentService:
    return RoleAssignmentService(session=session, runtime=runtime)


@pytest.fixture(name="entities")
def fx_entities(session: AsyncSession, runtime: Runtime) -> EntityService:
    return EntityService(session=session, runtime=runtime)


@pytest.fixture(name="legacy")
def fx_legacy(session: AsyncSession, runtime: Runtime) -> AuthTokenService:
    return AuthTokenService(session=session, runtime=runtime)
