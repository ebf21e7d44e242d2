"""Authentication as a plain ASGI middleware factory, applied by Litestar to every route.

Litestar's ``AbstractAuthenticationMiddleware`` raises through the exception machinery on failure, which costs
more than a successful request (docs/decisions.md, 1). Here a failure is answered directly with a pre-encoded 401
body, so a flood of garbage tokens is cheaper than valid traffic. Handlers and routers opt out with
``opt={"skip_auth": True}``.

It is a factory (``app -> app``, which Litestar accepts as middleware) rather than an ``ASGIMiddleware``: that base
class spends three keyword-argument calls per request deciding whether to run, about a tenth of what an
authenticated request adds to a bare one (measured side by side in one process). The decision here is one test.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from litestar.enums import ScopeType

from service.crypto import LEGACY_PREFIX, PAT_PREFIX
from service.errors import INVALID_TOKEN, NOT_AUTHENTICATED
from service.metrics import count_cache, count_verification
from service.security.principal import CredentialKind

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

    from service.runtime import Runtime

SKIP_AUTH = "skip_auth"


def _unauthorized(detail: str) -> tuple[tuple[tuple[bytes, bytes], ...], bytes]:
    """The headers and body of a 401 answering ``detail``, encoded once."""
    body = b'{"detail":"' + detail.encode() + b'"}'
    headers = (
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Token"),
    )
    return headers, body


_INVALID = _unauthorized(INVALID_TOKEN)
_MISSING = _unauthorized(NOT_AUTHENTICATED)


def read_credentials(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes | None, bytes | None]:
    """Read ``(authorization, forwarded_for)`` off the headers in one pass (this runs on every request).

    ``authorization``: the ``Authorization`` header's value, None without one, and ``b""`` (never valid) when it
    is repeated; ``forwarded_for``: every ``X-Forwarded-For`` header, raw, joined with ``,`` in order (a proxy may
    append a header of its own rather than extend the client's).
    """
    authorization = forwarded_for = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value if authorization is None else b""
        elif name == b"x-forwarded-for":
            forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
    return authorization, forwarded_for


def claimed_kind(authorization: bytes) -> str:
    """What a refused ``Authorization`` header claimed to hold, for the metrics (``pat``, ``token``, ``malformed``)."""
    key = authorization.rpartition(b" ")[2]
    if key.startswith(PAT_PREFIX.encode()):
        return CredentialKind.PAT
    return CredentialKind.TOKEN if key.startswith(LEGACY_PREFIX.encode()) else "malformed"


class AuthenticationMiddleware:
    """Sets ``scope["user"]`` (the principal) and ``scope["auth"]`` (the credential), or answers 401.

    ``request.user`` is a :class:`~service.security.principal.Principal`, ``request.auth`` the
    :class:`~service.security.verifier.CachedCredential` that admitted it.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.verifier = runtime.verifier

    def __call__(self, app: ASGIApp) -> ASGIApp:
        """Wrap one route's ASGI app (Litestar builds the middleware stack of each route once, at start-up)."""
        verifier = self.verifier

        async def authenticate(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope["route_handler"].opt.get(SKIP_AUTH):
                return await app(scope, receive, send)
            authorization, forwarded_for = read_credentials(scope["headers"])
            if authorization is None:
                return await _reject(send, _MISSING)
            client = scope.get("client")
            peer = client[0] if client else None
            credential = verifier.repeat(authorization, peer, forwarded_for)
            count_cache(credential is not None)
            if credential is None:
                credential = await verifier.verify(authorization, peer, forwarded_for)
                kind = credential.principal.kind if credential else claimed_kind(authorization)
                count_verification(kind, credential is not None)
                if credential is None:
                    return await _reject(send, _INVALID)
            scope["user"] = credential.principal
            scope["auth"] = credential
            await app(scope, receive, send)

        return authenticate


async def _reject(send: Send, response: tuple[tuple[tuple[bytes, bytes], ...], bytes]) -> None:
    # Fresh messages each time: whatever wraps ``send`` may rewrite them (the request-id hook replaces the
    # headers), and a change to a shared message would reach every later rejection.
    headers, body = response
    await send({"type": "http.response.start", "status": 401, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body, "more_body": False})
