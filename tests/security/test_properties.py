"""Property tests (Hypothesis): whatever a client sends, the answer is a clean 2xx/4xx, never an error.

- the ``Authorization`` parser never raises, and accepts exactly one well-formed ``Token|Bearer <ascii word>``;
- the middleware, fed arbitrary header bytes at the ASGI level (unicode, NUL, huge, repeated), only answers 401;
- pagination and filters with arbitrary values give 200, 400 or (a page past the end) 404;
- PAT creation with arbitrary JSON bodies gives 201 or 400.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.crypto import MAX_TOKEN_CHARS
from service.security.middleware import read_credentials
from service.security.verifier import token_from_header
from tests.support.security import STATS, Harness
from tests.support.world import Identities, build_identities

pytestmark = pytest.mark.fuzz

SCALE = max(1, int(os.environ.get("TOKENGATE_FUZZ_EXAMPLES", "8")) // 8)
HARNESS_SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True)

header_names = st.sampled_from([b"authorization", b"Authorization", b"x-forwarded-for", b"accept"]) | st.binary(
    min_size=1, max_size=20
)
token_like = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda kw, body: kw + b" " + body,
        st.sampled_from([b"Token", b"token", b"Bearer", b"BEARER", b"Basic", b""]),
        st.one_of(
            st.binary(max_size=200),
            st.from_regex(rb"\Aw_[0-9]{1,12}_[0-9A-Za-z_]{0,60}\Z"),
            st.from_regex(rb"\Atgl_[0-9A-Za-z]{40,60}\Z"),
        ),
    ),
    st.integers(min_value=10_000, max_value=200_000).map(lambda n: b"Token " + b"w" * n),
)


@settings(max_examples=500 * SCALE, deadline=None, database=None)
@given(headers=st.lists(st.tuples(header_names, token_like), max_size=6))
def test_authorization_parser_never_raises(headers: list[tuple[bytes, bytes]]) -> None:
    STATS.examples += 1
    authorization, forwarded_for = read_credentials(headers)
    values = [value for name, value in headers if name == b"authorization"]
    assert authorization == (None if not values else values[0] if len(values) == 1 else b"")  # repeated: never valid
    forwarded = [value for name, value in headers if name == b"x-forwarded-for"]
    assert forwarded_for == (b",".join(forwarded) if forwarded else None)  # every header, in order
    token = token_from_header(authorization) if authorization is not None else None
    if token is not None:
        assert len(values) == 1
        keyword, word = values[0].split()
        assert keyword.lower() in (b"token", b"bearer")
        assert token == word.decode("ascii")
        assert " " not in token


@settings(max_examples=200 * SCALE, deadline=None, database=None)
@given(
    keyword=st.sampled_from(["Token", "token", "Bearer", "bEaReR"]),
    word=st.text(
        st.characters(codec="ascii", exclude_characters=" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"),
        min_size=1,
        max_size=200,
    ),
)
def test_authorization_parser_accepts_every_single_ascii_word(keyword: str, word: str) -> None:
    STATS.examples += 1
    header = f"{keyword} {word}".encode()
    assert read_credentials([(b"authorization", header)]) == (header, None)
    assert token_from_header(header) == (word if len(word) <= MAX_TOKEN_CHARS else None)


async def asgi_request(
    harness: Harness, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Call the app at the ASGI level, so headers reach the middleware exactly as the bytes given."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("203.0.113.7", 40000),
        "server": ("testserver.local", 80),
        "state": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await harness.app(scope, receive, send)  # type: ignore[arg-type]
    STATS.requests += 1
    start = next(m for m in sent if m["type"] == "http.response.start")
    if start["status"] >= 500:
        STATS.server_errors += 1
    return (
        start["status"],
        dict(start["headers"]),
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )


def test_middleware_answers_every_garbage_header_with_401(harness: Harness) -> None:
    ids = harness.run(build_identities(harness.runtime, harness.client))
    valid = ids.headers("staff")["Authorization"].encode()

    @settings(HARNESS_SETTINGS, max_examples=150 * SCALE)
    @given(
        extra=st.lists(st.tuples(header_names, token_like), max_size=5),
        path=st.sampled_from(["/api/users/", "/api/personal-access-tokens/", "/api/events/", "/api/policy/matrix/"]),
    )
    def garbage(extra: list[tuple[bytes, bytes]], path: str) -> None:
        STATS.examples += 1
        # lower-case names, as an ASGI server delivers them
        headers = [(name.lower(), value) for name, value in extra]
        status, response_headers, body = harness.run(asgi_request(harness, "GET", path, headers))
        authorization, _ = read_credentials(headers)
        token = token_from_header(authorization) if authorization is not None else None
        if token is None or token != valid.split()[1].decode():
            assert status == 401, (headers, status, body)
            assert response_headers[b"www-authenticate"] == b"Token"
            detail = json.loads(body)["detail"]
            missing = "Authentication credentials were not provided."
            expected = "Invalid token." if authorization is not None else missing
            assert detail == expected
        else:
            assert status in (200, 404)

    garbage()
    # a second valid header makes even a valid token ambiguous: refused
    status, _, _ = harness.run(
        asgi_request(harness, "GET", "/api/users/", [(b"authorization", valid), (b"authorization", valid)])
    )
    assert status == 401
    status, _, _ = harness.run(asgi_request(harness, "GET", "/api/users/", [(b"authorization", valid)]))
    assert status == 200


LISTS = [
    "/api/users/",
    "/api/entities/",
    "/api/role-assignments/",
    "/api/personal-access-tokens/",
    "/api/events/",
    "/api/auth-tokens/",
    "/api/users/auth_tokens",
    "/api/personal-access-tokens/available_scopes/",
    "/api/personal-access-tokens/available_binding_targets/",
]
QUERY_KEYS = [
    "page",
    "page_size",
    "limit",
    "offset",
    "search",
    "ordering",
    "id_min",
    "id_max",
    "created_date",
    "updated_date",
    "created_from",
    "created_to",
    "updated_from",
    "updated_to",
    "username",
    "type",
    "parent",
    "user",
    "role",
    "is_active",
    "event_type",
]
query_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=80),
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1e9",
            "NaN",
            "%",
            "_",
            "'",
            "' OR 1=1 --",
            "2024-02-30",
            "9999-12-31",
            "-id",
            "true",
            "null",
            "\x00",
            "🦄",
            "1" * 400,
        ]
    ),
)


def test_pagination_and_filters_never_500(harness: Harness) -> None:
    ids = harness.run(build_identities(harness.runtime, harness.client))

    @settings(HARNESS_SETTINGS, max_examples=120 * SCALE)
    @given(
        path=st.sampled_from(LISTS),
        who=st.sampled_from(["staff", "user", "pat"]),
        params=st.lists(st.tuples(st.sampled_from(QUERY_KEYS), query_values), max_size=5),
        method=st.sampled_from(["GET", "HEAD"]),
    )
    def paginate(path: str, who: str, params: list[tuple[str, str]], method: str) -> None:
        STATS.examples += 1
        response = harness.request(method, path, params=params, headers=ids.headers(who))
        assert response.status_code in (200, 400, 403, 404), (path, params, response.status_code, response.text)
        if response.status_code == 403:
            assert who != "staff"
        if response.status_code == 404 and method != "HEAD":  # a HEAD answer has no body
            assert response.json() == {"detail": "Invalid page."}
        if response.status_code == 200:
            assert int(response.headers["X-Result-Count"]) >= 0

    paginate()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
date_like = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda moment: moment.isoformat()),
    st.sampled_from(["2999-01-01T00:00:00Z", "1970-01-01", "now", "", "2025-13-45T99:99:99"]),
    json_values,
)


def _pat_bodies(ids: Identities) -> st.SearchStrategy[Any]:
    near_valid = st.fixed_dictionaries(
        {},
        optional={
            "name": st.text(max_size=200) | json_values,
            "scopes": st.lists(
                st.sampled_from(["PROJECT.UPDATE", "STAFF.ACCESS", "CUSTOMER.OWNER", "x", ""]), max_size=4
            )
            | json_values,
            "expires_at": date_like,
            "allowed_scopes": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "type": st.sampled_from(["project", "customer", "resource", "nope"]) | json_values,
                        "uuid": st.sampled_from([ids.project, ids.customer, "not-a-uuid"]) | st.uuids().map(str),
                    },
                ),
                max_size=3,
            )
            | json_values,
            "allowed_networks": st.lists(
                st.sampled_from(["10.0.0.0/8", "10.0.0.1/8", "::1", "0.0.0.0/0", "x"]) | st.text(max_size=20),
                max_size=4,
            )
            | json_values,
            "extra": json_values,
        },
    )
    return st.one_of(near_valid, json_values)


def test_pat_creation_with_arbitrary_bodies_gives_201_or_400(harness: Harness) -> None:
    ids = harness.run(build_identities(harness.runtime, harness.client))
    created: list[str] = []

    @settings(HARNESS_SETTINGS, max_examples=150 * SCALE)
    @given(body=_pat_bodies(ids), raw=st.booleans())
    def create(body: Any, raw: bool) -> None:
        STATS.examples += 1
        content = (
            json.dumps(body).encode() if not raw or not isinstance(body, str) else body.encode("utf-8", "surrogatepass")
        )
        response = harness.request(
            "POST",
            "/api/personal-access-tokens/",
            content=content,
            headers={**ids.headers("user"), "Content-Type": "application/json"},
        )
        assert response.status_code in (201, 400), (body, response.status_code, response.text)
        if response.status_code == 201:
            created.append(response.json()["uuid"])
            # keep room under the 20-token limit so later valid bodies still reach the validators
            revoked = harness.request(
                "DELETE", f"/api/personal-access-tokens/{created[-1]}/", headers=ids.headers("user")
            )
            assert revoked.status_code == 204
        else:
            assert isinstance(response.json(), dict | list)

    create()
