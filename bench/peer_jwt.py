"""The stateless peer: Litestar's own ``JWTAuth`` on the check's endpoint shape, with its own bare twin.

A JWT is verified by its signature alone, so it can never be revoked before it expires: the cheapest verification
there is, and the one tokengate is compared with for many distinct tokens. The permission answer is the same
in-memory walk up the tree as the Django peer's, over the tree of ``bench.crowd`` (read from the JSON file named by
``PEER_JWT_TREE``: ``{"parents": {uuid: parent uuid}, "owners": {user id: customer uuid}}``).

Served as ``bench.peer_jwt:create_peer_app`` (a factory) with ``PEER_JWT_SECRET`` set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.params import JSONBody
from litestar.security.jwt import JWTAuth, Token

from service.authz.schemas import CheckRequest, CheckResult

BARE_CHECK_PATH = "/bench/bare-check/"
SECRET_ENV, TREE_ENV = "PEER_JWT_SECRET", "PEER_JWT_TREE"
PERMISSION = "RESOURCE.UPDATE"  # what CUSTOMER.OWNER grants on everything below its customer


@dataclass(frozen=True, slots=True)
class PeerUser:
    id: int
    customer: str


def encode_tokens(secret: str, user_ids: list[int], per_user: int) -> list[str]:
    """``per_user`` distinct JWTs for each user (distinct ``jti``), valid for a day."""
    from datetime import UTC, datetime, timedelta

    expires = datetime.now(UTC) + timedelta(days=1)
    return [
        Token(sub=str(user_id), exp=expires, jti=f"{user_id}-{n}").encode(secret, "HS256")
        for n in range(per_user)
        for user_id in user_ids
    ]


def create_peer_app() -> Litestar:
    """The peer app: ``JWTAuth`` on every route but /health and the bare twin."""
    tree = json.loads(Path(os.environ[TREE_ENV]).read_text())
    parents: dict[str, str | None] = tree["parents"]
    users = {user_id: PeerUser(int(user_id), customer) for user_id, customer in tree["owners"].items()}

    async def retrieve_user(token: Token, _connection: Any) -> PeerUser | None:
        return users.get(token.sub)

    jwt_auth = JWTAuth[PeerUser](
        retrieve_user_handler=retrieve_user,
        token_secret=os.environ[SECRET_ENV],
        exclude=[BARE_CHECK_PATH, "/health"],
    )

    @post("/api/authz/check/", status_code=200)
    async def check(data: JSONBody[CheckRequest], request: Request[PeerUser, Token, Any]) -> CheckResult:
        node = str(data.entity.uuid) if data.entity is not None else None
        while node is not None:
            if node == request.user.customer and data.permission == PERMISSION:
                return CheckResult(allowed=True, reason=f"CUSTOMER.OWNER held on {node}", clause="role")
            node = parents.get(node)
        return CheckResult(allowed=False, reason="no role grants it", clause="role")

    @post(BARE_CHECK_PATH, status_code=200)
    async def bare_check(data: JSONBody[CheckRequest]) -> CheckResult:
        return CheckResult(allowed=True, reason=f"bare {data.permission}", clause="bare")

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([check, bare_check, health], on_app_init=[jwt_auth.on_app_init])
