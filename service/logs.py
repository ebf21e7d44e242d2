"""Logging: one JSON object a line (plain text on a terminal), the access log included.

Every line written while a request is handled carries its ``request_id`` (taken from a well-formed
``X-Request-ID`` header, else made here, and echoed in the response), and the access line also names the user and
the credential by their ids. No line holds a token: the access line has the path without its query string (a key
pasted into ``?search=`` stays out), and both formatters cut anything token-shaped in a finished line (a key in a
path, in a message, in a traceback) to its display prefix.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import sys
import time
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.enums import ScopeType

from service.crypto import display_prefix, find_tokens

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from service.config import LogSettings
    from service.security.principal import Principal

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_STATE_KEY = "tokengate.request"
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}
_QUIET_LOGGERS = ("alembic.runtime.plugins",)  # one line per plugin in every process at info

_PROCESS_ID = secrets.token_hex(8)
_REQUEST_COUNTER = itertools.count(1)

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("tokengate.access")
_encoder = msgspec.json.Encoder()


class RequestState(msgspec.Struct):
    """What the access line needs from the start of a request."""

    request_id: str
    started: float


def new_request_id() -> str:
    """A request id unique across processes: a random per-process part and a counter (no system call per request)."""
    return f"{_PROCESS_ID}{next(_REQUEST_COUNTER):016x}"


def request_state(scope: Scope) -> RequestState:
    """The request's id and start (made on first use): a well-formed ``X-Request-ID`` is kept, else a new one."""
    state = scope["state"].get(_STATE_KEY)
    if state is None:
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and _REQUEST_ID.fullmatch(value):
                request_id = value.decode()
                break
        state = scope["state"][_STATE_KEY] = RequestState(request_id or new_request_id(), time.perf_counter())
    return state


def redact(text: str) -> str:
    """``text`` with every token in it (as a leak scanner finds them) cut to its display prefix."""
    for match in reversed(list(find_tokens(text))):
        text = text[: match.start()] + display_prefix(match.group()) + "..." + text[match.end() :]
    return text


def request_context(app: ASGIApp) -> ASGIApp:
    """Middleware (first on every route): makes the request id known to every log line written while handling it."""

    async def with_request_id(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            return await app(scope, receive, send)
        reset = request_id_var.set(request_state(scope).request_id)
        try:
            await app(scope, receive, send)
        finally:
            request_id_var.reset(reset)

    return with_request_id


class AccessLog:
    """A ``before_send`` hook: echoes the request id and writes the access line when the response starts."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    async def __call__(self, message: Message, scope: Scope) -> None:
        """Run on every message the app sends; acts on ``http.response.start`` only."""
        if message["type"] != "http.response.start":
            return
        state = request_state(scope)
        message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, state.request_id.encode())]
        if not self.enabled or not access_logger.isEnabledFor(logging.INFO):
            return
        principal: Principal | None = scope.get("user")
        route = scope.get("path_template")
        client = scope.get("client")
        method = scope.get("method")
        path = redact(scope["path"])  # the record itself holds no token, whatever handler receives it
        access_logger.info(
            "%s %s %d",
            method,
            path,
            message["status"],
            extra={
                "request_id": state.request_id,
                "method": method,
                "path": path,
                "route": route,
                "status": message["status"],
                "duration_ms": round((time.perf_counter() - state.started) * 1000, 3),
                "peer": client[0] if client else None,
                "user_id": principal.user_id if principal else None,
                "credential": f"{principal.kind}:{principal.credential_id}" if principal else None,
            },
        )


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    fields = {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}
    request_id = request_id_var.get()
    if request_id is not None:
        fields.setdefault("request_id", request_id)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the record's extra fields, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Encode ``record`` as one line."""
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extra(record),
        }
        if record.exc_info:
            document["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return redact(_encoder.encode(document).decode())


class PlainFormatter(logging.Formatter):
    """``time level logger: message key=value…`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The standard line, then the extra fields."""
        line = super().format(record)
        fields = " ".join(f"{key}={value}" for key, value in _extra(record).items() if value is not None)
        return redact(f"{line}  {fields}" if fields else line)


def configure_logging(settings: LogSettings) -> None:
    """Send every logger (uvicorn's and Litestar's included) to standard error in the configured format."""
    use_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.error").setLevel(settings.level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
