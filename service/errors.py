"""One error hierarchy, mapped to Waldur-shaped HTTP responses in one place."""

from __future__ import annotations

import logging
import re
from typing import Any

from advanced_alchemy.exceptions import DuplicateKeyError, NotFoundError
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
)

from service.text import PATTERN_MESSAGES

logger = logging.getLogger("tokengate.errors")

INVALID_TOKEN = "Invalid token."
NOT_AUTHENTICATED = "Authentication credentials were not provided."
NOT_PERMITTED = "You do not have permission to perform this action."
NOT_FOUND = "Not found."
NON_FIELD = "non_field_errors"


class ApplicationError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = HTTP_500_INTERNAL_SERVER_ERROR
    default_detail = "Server error."

    def __init__(self, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        self.detail = self.default_detail if detail is None else detail
        self.headers = headers or {}
        super().__init__(str(self.detail))

    def body(self) -> Any:
        """The JSON body of the response."""
        return {"detail": self.detail}


class ValidationError(ApplicationError):
    """400 with ``{field: [messages]}``; a bare message or list goes under ``non_field_errors``."""

    status_code = HTTP_400_BAD_REQUEST

    def __init__(self, errors: dict[str, Any] | list[str] | str) -> None:
        if isinstance(errors, str):
            errors = {NON_FIELD: [errors]}
        elif isinstance(errors, list):
            errors = {NON_FIELD: errors}
        self.errors = {key: value if isinstance(value, list | dict) else [value] for key, value in errors.items()}
        super().__init__(self.errors)

    def body(self) -> Any:
        """Waldur's validation body."""
        return self.errors


class ActionError(ApplicationError):
    """400 with a plain list body, as Waldur's view-level ``ValidationError(["…"])``."""

    status_code = HTTP_400_BAD_REQUEST

    def body(self) -> Any:
        """A one-message list."""
        return [self.detail]


class AuthenticationError(ApplicationError):
    """401: the caller is not (or no longer) authenticated."""

    status_code = HTTP_401_UNAUTHORIZED
    default_detail = INVALID_TOKEN

    def __init__(self, detail: Any = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Token"})


class PermissionDenied(ApplicationError):
    """403."""

    status_code = HTTP_403_FORBIDDEN
    default_detail = NOT_PERMITTED


class NotFound(ApplicationError):
    """404."""

    status_code = HTTP_404_NOT_FOUND
    default_detail = NOT_FOUND


class Conflict(ApplicationError):
    """409: the request is valid but clashes with the current state."""

    status_code = HTTP_409_CONFLICT
    default_detail = "Conflict."


class Throttled(ApplicationError):
    """429 with ``Retry-After``."""

    status_code = HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Request was throttled. Expected available in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )


_AT_PATH = re.compile(r" - at `\$\.?([A-Za-z_][A-Za-z0-9_]*)")
_NAMED_FIELD = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")


def _field_of(item: Any) -> tuple[str, str]:
    """``(field, message)`` of one Litestar validation item; body errors are keyed by the JSON field at fault."""
    if not isinstance(item, dict):
        return NON_FIELD, str(item)
    message = str(item.get("message", item))
    key = item.get("key") or NON_FIELD
    # Litestar names the body field at fault in ``key``; errors about the body as a whole come keyed ``data``, and
    # then a missing or unknown field is named only in the message.
    if key == "data":
        match = _AT_PATH.search(message) or _NAMED_FIELD.search(message)
        key = match.group(1) if match else NON_FIELD
    return key, _readable(message)


def _readable(message: str) -> str:
    """A failed text constraint said in words rather than as the regular expression it did not match."""
    for pattern, words in PATTERN_MESSAGES.items():
        if f"matching regex {pattern!r}" in message:
            return words
    return message


def _validation_body(exc: ValidationException) -> dict[str, list[str]]:
    body: dict[str, list[str]] = {}
    for item in exc.extra if isinstance(exc.extra, list) else []:
        key, message = _field_of(item)
        body.setdefault(key, []).append(message)
    return body or {NON_FIELD: [str(exc.detail)]}


def exception_to_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The single exception handler: every error becomes a Waldur-shaped JSON response."""
    if isinstance(exc, ApplicationError):
        return Response(exc.body(), status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, ValidationException):
        return Response(_validation_body(exc), status_code=HTTP_400_BAD_REQUEST)
    if isinstance(exc, NotFoundError | NotFoundException):
        return Response({"detail": NOT_FOUND}, status_code=HTTP_404_NOT_FOUND)
    if isinstance(exc, DuplicateKeyError):
        return Response({"detail": "Conflict with an existing record."}, status_code=HTTP_409_CONFLICT)
    if isinstance(exc, NotAuthorizedException):
        return Response({"detail": NOT_AUTHENTICATED}, status_code=HTTP_401_UNAUTHORIZED)
    if isinstance(exc, PermissionDeniedException):
        return Response({"detail": NOT_PERMITTED}, status_code=HTTP_403_FORBIDDEN)
    if isinstance(exc, MethodNotAllowedException):
        return Response({"detail": f'Method "{request.method}" not allowed.'}, status_code=405, headers=exc.headers)
    if isinstance(exc, HTTPException):
        return Response({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response({"detail": "Server error."}, status_code=HTTP_500_INTERNAL_SERVER_ERROR)
