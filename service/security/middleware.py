"""Authentication as a pure-ASGI Litestar middleware.

Litestar's ``AbstractAuthenticationMiddleware`` raises through the exception machinery on failure, which costs
more than a successful request (PERF-NOTES). Here a failure is answered directly with a pre-encoded 401 body, so
a flood of garbage tokens is cheaper than valid traffic. Handlers opt out with ``opt={"skip_auth": True}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from service.errors import INVALID_TOKEN, NOT_AUTHENTICATED
from service.security.client_ip import client_ip

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

    from service.runtime import Runtime
    from service.security.client_ip import IPAddress

SKIP_AUTH = "skip_auth"
_KEYWORDS = (b"token", b"bearer")
_ADDRESS_MEMO_SIZE = 1024
_ADDRESS_MEMO_KEY_CHARS = 128


def _unauthorized(detail: str) -> tuple[dict[str, object], dict[str, object]]:
    body = b'{"detail":"' + detail.encode() + b'"}'
    start = {
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Token"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


_INVALID = _unauthorized(INVALID_TOKEN)
_MISSING = _unauthorized(NOT_AUTHENTICATED)


def parse_authorization(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bool, str | None]:
    """Return ``(present, token)``: whether an Authorization header came, and the token if well-formed.

    One header, ``Token <key>`` or ``Bearer <key>`` (keyword case-insensitive), a single ASCII word.
    """
    values = [value for name, value in headers if name == b"authorization"]
    if not values:
        return False, None
    if len(values) > 1:
        return True, None
    parts = values[0].split()
    if len(parts) != 2 or parts[0].lower() not in _KEYWORDS or not parts[1].isascii():
        return True, None
    return True, parts[1].decode("ascii")


class AuthenticationMiddleware(ASGIMiddleware):
    """Sets ``scope["user"]`` to the :class:`~service.security.principal.Principal` or answers 401."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = SKIP_AUTH
    exclude_path_pattern = ("^/schema",)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.trusted_proxies = runtime.trusted_proxies
        # (peer, X-Forwarded-For) -> client address: parsing costs more than the rest of a cached verification
        self._addresses: dict[tuple[str | None, str | None], IPAddress | None] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Authenticate, then pass the request on."""
        present, token = parse_authorization(scope["headers"])
        if not present:
            return await self._reject(send, _MISSING)
        principal = None
        if token is not None:
            client = scope.get("client")
            peer = client[0] if client else None
            forwarded = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"), None)
            ip = self._client_ip(peer, forwarded)
            scope["state"]["client_ip"] = ip
            principal = await self.runtime.verifier.verify(token, ip)
        if principal is None:
            return await self._reject(send, _INVALID)
        scope["user"] = principal
        scope["auth"] = principal.kind
        await next_app(scope, receive, send)

    def _client_ip(self, peer: str | None, forwarded: str | None) -> IPAddress | None:
        key = (peer, forwarded)
        if key in self._addresses:
            return self._addresses[key]
        ip = client_ip(peer, forwarded, self.trusted_proxies)
        if forwarded is None or len(forwarded) <= _ADDRESS_MEMO_KEY_CHARS:  # long headers: not worth keeping
            if len(self._addresses) >= _ADDRESS_MEMO_SIZE:
                self._addresses.clear()
            self._addresses[key] = ip
        return ip

    @staticmethod
    async def _reject(send: Send, response: tuple[dict[str, object], dict[str, object]]) -> None:
        await send(response[0])  # type: ignore[arg-type]
        await send(response[1])  # type: ignore[arg-type]
