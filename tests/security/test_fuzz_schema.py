"""Schema-driven fuzzing: schemathesis generates requests for every operation of the app's own OpenAPI schema.

Each operation is fuzzed as staff (legacy key), as a plain user (legacy key) and as that user's bound PAT. Every
response must be a non-5xx whose status code, content type, headers and body the schema documents.

Bounded for CI: ``TOKENGATE_FUZZ_EXAMPLES`` (default 8) examples per operation and identity, on SQLite only —
the generated requests exercise the HTTP and validation layers, which do not depend on the backend; the
PostgreSQL-specific paths are covered by the property, abuse, concurrency and durability tests, which run on both.
For a long run: ``TOKENGATE_FUZZ_EXAMPLES=500 pytest tests/security/test_fuzz_schema.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.security import STATS, Harness
from tests.support.world import Identities, build_identities

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("TOKENGATE_FUZZ_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
IDENTITIES = ["staff", "user", "pat"]
SELF = "/api/personal-access-tokens/self"


@pytest.fixture(name="database_url")
def fx_sqlite_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Fuzzing runs on its own migrated SQLite file (see the module docstring)."""
    from service.db import upgrade_database
    from tests.support.app import make_settings

    tmp = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}"
    upgrade_database(make_settings(url, tmp))
    yield url


def _protects_identities(case: Any, ids: Identities) -> bool:
    """Keep generated cases from deleting or regenerating the fuzzing identities' own keys (valid, but not useful)."""
    params = case.path_parameters or {}
    if "user_id" in params and params["user_id"] in (ids.staff_id, ids.user_id):
        return False
    return not ("token_id" in params and params["token_id"] in range(1, 10))


async def disposable_pat(harness: Harness, ids: Identities) -> dict[str, str]:
    """The header of a new PAT of the user, for fuzzing a PAT revoking itself without losing the PAT identity."""
    expires_at = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    body = {"name": "disposable", "scopes": ["PROJECT.UPDATE"], "expires_at": expires_at}
    response = await harness.client.post("/api/personal-access-tokens/", json=body, headers=ids.headers("user"))
    assert response.status_code == 201, response.text
    return {"Authorization": f"Token {response.json()['token']}"}


def _send(harness: Harness, case: Any, headers: dict[str, str]) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url="http://testserver.local", headers=headers)
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params"),
        "headers": kwargs.get("headers"),
        "cookies": kwargs.get("cookies"),
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        request["content"] = kwargs["data"]
    return harness.run(harness.client.request(**request))


@pytest.mark.parametrize("who", IDENTITIES)
def test_every_operation_answers_within_its_schema(harness: Harness, who: str) -> None:
    ids = harness.run(build_identities(harness.runtime, harness.client))
    schema = schemathesis.openapi.from_dict(harness.app.openapi_schema.to_schema())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, [op.label for op in operations]
    headers = ids.headers(who)
    statuses: dict[str, set[int]] = {}

    for operation in operations:
        revokes_itself = operation.method.upper() == "DELETE" and operation.path == SELF
        own_headers = harness.run(disposable_pat(harness, ids)) if revokes_itself and who == "pat" else headers
        _fuzz_operation(harness, operation, ids, own_headers, statuses)

    assert set(statuses) == {op.label for op in operations}
    # the identities still work: the fuzzing did not lock itself out
    assert harness.request("GET", "/api/personal-access-tokens/", headers=headers).status_code == 200


def _fuzz_operation(
    harness: Harness, operation: Any, ids: Identities, headers: dict[str, str], statuses: dict[str, set[int]]
) -> None:
    """Positive and negative schemathesis cases for one operation, each checked against the schema."""
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    strategy = strategy.filter(lambda case: _protects_identities(case, ids))

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        STATS.examples += 1
        response = _send(harness, case, headers)
        statuses.setdefault(operation.label, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    fuzz()
