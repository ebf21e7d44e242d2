"""Authentication as a pure-ASGI Litestar middleware.

Litestar's ``AbstractAuthenticationMiddleware`` raises through the exception machinery on failure, which costs
more than a successful request (PERF-NOTES). Here a failure is answered directly with a pre-encoded 401 body, so
a flood of garbage tokens is cheaper than valid traffic. Handlers and routers opt out with
``opt={"skip_auth": True}``.
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


def read_credentials(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bool, str | None, bytes | None]:
    """Read ``(present, token, forwarded_for)`` off the headers in one pass (this runs on every request).

    ``present``: whether an ``Authorization`` header came; ``token``: its key, if the header is well-formed: a single
    one, ``Token <key>`` or ``Bearer <key>`` (keyword case-insensitive), with a single ASCII word as the key;
    ``forwarded_for``: the first ``X-Forwarded-For`` header, raw.
    """
    authorization = forwarded_for = None
    repeated = False
    for name, value in headers:
        if name == b"authorization":
            repeated = repeated or authorization is not None
            authorization = value
        elif name == b"x-forwarded-for" and forwarded_for is None:
            forwarded_for = value
    if authorization is None:
        return False, None, forwarded_for
    parts = authorization.split()
    if repeated or len(parts) != 2 or parts[0].lower() not in _KEYWORDS or not parts[1].isascii():
        return True, None, forwarded_for
    return True, parts[1].decode("ascii"), forwarded_for


class AuthenticationMiddleware(ASGIMiddleware):
    """Sets ``scope["user"]`` to the :class:`~service.security.principal.Principal` or answers 401."""

    scopes = (ScopeType.HTTP,)
    exclude_opt_key = SKIP_AUTH  # a per-handler flag; a path pattern would cost a regex search on every request

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.trusted_proxies = runtime.trusted_proxies
        # (peer, X-Forwarded-For) -> client address: parsing costs more than the rest of a cached verification
        self._addresses: dict[tuple[str | None, bytes | None], IPAddress | None] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Authenticate, then pass the request on."""
        present, token, forwarded_for = read_credentials(scope["headers"])
        if not present:
            return await self._reject(send, _MISSING)
        principal = None
        if token is not None:
            client = scope.get("client")
            ip = self._client_ip(client[0] if client else None, forwarded_for)
            principal = await self.runtime.verifier.verify(token, ip)
        if principal is None:
            return await self._reject(send, _INVALID)
        scope["user"] = principal
        await next_app(scope, receive, send)

    def _client_ip(self, peer: str | None, forwarded_for: bytes | None) -> IPAddress | None:
        """The client's address, memoised: the same object for the same peer and header (see ``UsageRecorder``)."""
        key = (peer, forwarded_for)
        if key in self._addresses:
            return self._addresses[key]
        ip = client_ip(peer, forwarded_for.decode("latin-1") if forwarded_for else None, self.trusted_proxies)
        if forwarded_for is None or len(forwarded_for) <= _ADDRESS_MEMO_KEY_CHARS:  # long headers: not worth keeping
            if len(self._addresses) >= _ADDRESS_MEMO_SIZE:
                self._addresses.clear()
            self._addresses[key] = ip
        return ip

    @staticmethod
    async def _reject(send: Send, response: tuple[dict[str, object], dict[str, object]]) -> None:
        await send(response[0])  # type: ignore[arg-type]
        await send(response[1])  # type: ignore[arg-type]
