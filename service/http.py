"""Small HTTP helpers shared by controllers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from litestar import HttpMethod, Request
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Operation

from service.errors import ValidationError
from service.security.client_ip import client_ip

LIST_METHODS = [HttpMethod.GET, HttpMethod.HEAD]


@dataclass
class PublicOperation(Operation):
    """The schema of an operation that needs no token: ``security: []`` overrides the global requirement.

    Litestar leaves an empty ``security`` out of the schema, so the operation would inherit the global ``Token``
    requirement; use it as the handler's ``operation_class``.
    """

    def __post_init__(self) -> None:
        self.security = []


NO_STORE = {"Cache-Control": "no-store"}


class ErrorDetail(msgspec.Struct):
    """The body of every error but validation: ``{"detail": "..."}``."""

    detail: str


ValidationErrors = dict[str, Any] | list[str]
"""Waldur's 400 body: ``{field: [messages]}``, or ``[message]`` when an action is refused."""

_ERRORS: dict[int, tuple[Any, str]] = {
    400: (ValidationErrors, "Invalid input: `{field: [messages]}`, or `[message]` for a refused action."),
    401: (ErrorDetail, "Missing, malformed, unknown, expired or revoked credentials (one body for all)."),
    403: (ErrorDetail, "Authenticated, but not allowed to do this (staff only, or a PAT managing tokens)."),
    404: (ErrorDetail, "No such object visible to the caller, or a page past the last one."),
    409: (ErrorDetail, "Valid, but clashes with the current state."),
    413: (ErrorDetail, "The request body is larger than 1 MiB."),
    429: (ErrorDetail, "Too many attempts; `Retry-After` (or `RateLimit-Reset`) says in how many seconds to retry."),
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the error statuses a handler answers with, in their Waldur shapes."""
    return {
        code: ResponseSpec(data_container=_ERRORS[code][0], description=_ERRORS[code][1], generate_examples=False)
        for code in codes
    }


READ = error_responses(400, 401, 404)
"""A read of one object or a list page by any authenticated caller."""
STAFF_READ = error_responses(400, 401, 403, 404)
"""A staff-only read."""
WRITE = error_responses(400, 401, 403, 404, 409, 413)
"""A change with a body (or a guarded action) that may also be refused for state or size."""


def absolute_url(request: Request[Any, Any, Any], path: str) -> str:
    """``path`` on the host the request came to."""
    return str(request.base_url).rstrip("/") + path


def user_url(request: Request[Any, Any, Any], user_uuid: UUID) -> str:
    """The API address of a user (Waldur renders UUIDs as hex in URLs)."""
    return absolute_url(request, f"/api/users/{user_uuid.hex}/")


def client_address(request: Request[Any, Any, Any]) -> str:
    """The client address for routes the authentication middleware skips (login), by the same rule (``client_ip``).

    "unknown" when it cannot be told: all such requests share one login-throttle bucket (fail closed).
    """
    peer = request.client.host if request.client else None
    forwarded_for = ",".join(request.headers.getall("x-forwarded-for", [])) or None
    ip = client_ip(peer, forwarded_for, request.app.state.runtime.trusted_proxies)
    return str(ip) if ip is not None else "unknown"


class JsonRequest(Request[Any, Any, Any]):
    """The app's request class: a JSON body too deeply nested to decode is a 400, not a ``RecursionError`` (500).

    msgspec decodes recursively; a body of 100,000 ``[`` exhausts the stack on any route that reads one, login
    included, before anything about it can be validated.
    """

    async def json(self) -> Any:
        """The decoded JSON body."""
        try:
            return await super().json()
        except RecursionError:
            raise ValidationError("The JSON body is nested too deeply.") from None


def list_operation_id(name: str) -> Callable[..., str]:
    """Operation ids for a GET+HEAD list route: ``name`` for GET, ``nameCount`` for HEAD."""

    def operation_id(_handler: Any, http_method: str, _path: Any) -> str:
        return f"{name}Count" if http_method == "HEAD" else name

    return operation_id
