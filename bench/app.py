"""The service as benchmarked: the real app plus a bare twin of ``POST /api/authz/check/``.

The twin takes the same JSON body and returns the same response type through the same framework path, but does no
authentication and asks no policy question — so check/twin isolates what authentication and the decision cost,
while check//health also counts reading a JSON body. The twin exists only in this benchmark app.
"""

from __future__ import annotations

from litestar import Litestar, post
from litestar.params import JSONBody

from service.app import create_app
from service.authz.schemas import CheckRequest, CheckResult
from service.security.middleware import SKIP_AUTH

BARE_CHECK_PATH = "/bench/bare-check/"


@post(BARE_CHECK_PATH, opt={SKIP_AUTH: True}, status_code=200, include_in_schema=False)
async def bare_check(data: JSONBody[CheckRequest]) -> CheckResult:
    """The check's shape without its work."""
    return CheckResult(allowed=True, reason=f"bare {data.permission}", clause="bare")


def create_bench_app() -> Litestar:
    """``create_app()`` with the bare twin registered."""
    app = create_app()
    app.register(bare_check)
    return app
