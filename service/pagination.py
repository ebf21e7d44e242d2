"""Waldur's list conventions, shared by every list endpoint.

A JSON array body; ``page``/``page_size`` (default 10, at most 100) or, where a Waldur API asks for it,
``limit``/``offset``; an RFC 5988 ``Link`` header with ``first``/``prev``/``next``/``last``; the total in
``X-Result-Count``; and ``HEAD`` answering with the headers only (the published client's ``*_count``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from advanced_alchemy.filters import LimitOffset
from litestar import Request, Response, route
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.types import Guard

from service.errors import NotFound
from service.http import LIST_METHODS, list_operation_id

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
RESULT_COUNT_HEADER = "X-Result-Count"


@dataclass(frozen=True, slots=True)
class Window:
    """Which slice of a list to return, whether asked for by page or by offset."""

    limit: int
    offset: int
    by_page: bool

    @property
    def filter(self) -> LimitOffset:
        """The advanced-alchemy filter selecting this slice."""
        return LimitOffset(limit=self.limit, offset=self.offset)


def provide_page(
    page: Annotated[int, Parameter(ge=1, le=10**9, description="A page number within the paginated result set.")] = 1,
    page_size: Annotated[
        int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Number of results to return per page.")
    ] = DEFAULT_PAGE_SIZE,
) -> Window:
    """Dependency: the ``page``/``page_size`` window."""
    return Window(limit=page_size, offset=(page - 1) * page_size, by_page=True)


def provide_limit_offset(
    limit: Annotated[
        int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Number of results to return per page.")
    ] = DEFAULT_PAGE_SIZE,
    offset: Annotated[
        int, Parameter(ge=0, le=10**12, description="Number of results to skip before returning results.")
    ] = 0,
) -> Window:
    """Dependency: the ``limit``/``offset`` window (the admin listing *Get All Auth Tokens*)."""
    return Window(limit=limit, offset=offset, by_page=False)


WindowDependency = NamedDependency[Window]
"""Handler parameter type for the ``window`` dependency every :func:`list_route` provides."""


def list_route(
    operation_id: str,
    responses: dict[int, ResponseSpec],
    *,
    path: str = "/",
    window: Callable[..., Window] = provide_page,
    guards: Sequence[Guard] | None = None,
) -> HTTPRouteHandler:
    """A ``GET``+``HEAD`` list route (``operation_id`` and ``operation_idCount``) with its ``window`` dependency."""
    return route(
        path,
        http_method=LIST_METHODS,
        operation_id=list_operation_id(operation_id),
        responses=responses,
        guards=guards,
        dependencies={"window": Provide(window, sync_to_thread=False)},
    )


def _link(request: Request[Any, Any, Any], window: Window, offset: int) -> str:
    """The request's own URL with the window moved to ``offset``; other query parameters (repeated ones too) kept."""
    if window.by_page:
        paging = {"page": str(offset // window.limit + 1), "page_size": str(window.limit)}
    else:
        paging = {"limit": str(window.limit), "offset": str(offset)}
    params = [(key, value) for key, value in request.query_params.multi_items() if key not in paging]
    # Litestar strips the trailing slash from scope["path"]; the links keep the path as the client sent it.
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else ""
    return str(request.url.with_replacements(path=path, query=urlencode([*params, *paging.items()])))


def paginated(request: Request[Any, Any, Any], items: Sequence[T], total: int, window: Window) -> Response[list[T]]:
    """The list response: body (none for ``HEAD``), ``Link`` and ``X-Result-Count``.

    Raises:
        NotFound: a page past the last one was asked for (DRF's "Invalid page.").
    """
    if window.by_page and window.offset and window.offset >= total:
        raise NotFound("Invalid page.")
    last_offset = max(0, (math.ceil(total / window.limit) - 1) * window.limit)
    links = [("first", 0)]
    if window.offset > 0:
        links.append(("prev", max(0, window.offset - window.limit)))
    if window.offset + window.limit < total:
        links.append(("next", window.offset + window.limit))
    links.append(("last", last_offset))
    headers = {
        RESULT_COUNT_HEADER: str(total),
        "Link": ", ".join(f'<{_link(request, window, offset)}>; rel="{rel}"' for rel, offset in links),
        "Access-Control-Expose-Headers": f"Link, {RESULT_COUNT_HEADER}",
    }
    body = None if request.method == "HEAD" else list(items)
    return Response(body, headers=headers)  # type: ignore[arg-type]


def paginated_list(request: Request[Any, Any, Any], items: Sequence[T], window: Window) -> Response[list[T]]:
    """The list response for a list held in memory whole: the window's slice of ``items``."""
    return paginated(request, items[window.offset : window.offset + window.limit], len(items), window)
