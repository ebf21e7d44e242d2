"""Waldur list conventions without a database: windows, ``Link``, ``X-Result-Count``, ``HEAD`` and the last page."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Request

from service.errors import NotFound
from service.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Window,
    paginated,
    provide_limit_offset,
    provide_page,
)
from tests.support.factories import parse_links


def request(query: str, method: str = "GET") -> Request[Any, Any, Any]:
    # Litestar's router has already stripped the trailing slash from "path"; "raw_path" is what the client sent.
    return Request(
        scope={  # type: ignore[arg-type]
            "type": "http",
            "method": method,
            "scheme": "http",
            "server": ("api.example.org", 80),
            "root_path": "",
            "path": "/api/things",
            "raw_path": b"/api/things/",
            "query_string": query.encode(),
            "headers": [(b"host", b"api.example.org")],
            "state": {},
            "path_params": {},
        }
    )


def test_defaults_are_waldurs() -> None:
    assert (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE) == (10, 100)
    assert provide_page() == Window(limit=10, offset=0, by_page=True)
    assert provide_limit_offset() == Window(limit=10, offset=0, by_page=False)


@pytest.mark.parametrize(("page", "size", "offset"), [(1, 10, 0), (2, 10, 10), (3, 7, 14), (1, 100, 0)])
def test_page_window(page: int, size: int, offset: int) -> None:
    window = provide_page(page=page, page_size=size)
    assert (window.limit, window.offset) == (size, offset)
    assert (window.filter.limit, window.filter.offset) == (size, offset)


@pytest.mark.parametrize(
    ("query", "window", "total", "rels"),
    [
        ("", Window(10, 0, True), 0, {"first": 1, "last": 1}),
        ("", Window(10, 0, True), 10, {"first": 1, "last": 1}),
        ("", Window(10, 0, True), 11, {"first": 1, "next": 2, "last": 2}),
        ("page=2", Window(10, 10, True), 25, {"first": 1, "prev": 1, "next": 3, "last": 3}),
        ("page=3", Window(10, 20, True), 25, {"first": 1, "prev": 2, "last": 3}),
    ],
)
def test_page_links(query: str, window: Window, total: int, rels: dict[str, int]) -> None:
    response = paginated(request(query), ["x"] * min(window.limit, max(0, total - window.offset)), total, window)
    assert response.headers["X-Result-Count"] == str(total)
    links = parse_links(response.headers["Link"])
    assert {rel: int(url.split("page=")[1].split("&")[0]) for rel, url in links.items()} == rels
    assert all(url.startswith("http://api.example.org/api/things/?") for url in links.values())
    assert all(f"page_size={window.limit}" in url for url in links.values())


def test_offset_links_keep_other_parameters_including_repeated_ones() -> None:
    response = paginated(request("search=a%20b&tag=1&tag=2&limit=5&offset=5"), ["x"] * 5, 12, Window(5, 5, False))
    links = parse_links(response.headers["Link"])
    assert set(links) == {"first", "prev", "next", "last"}
    assert "offset=0" in links["first"]
    assert "offset=0" in links["prev"]
    assert "offset=10" in links["next"]
    assert "offset=10" in links["last"]
    for url in links.values():
        assert "tag=1&tag=2" in url
        assert "search=a+b" in url
        assert url.count("limit=") == 1
        assert url.count("offset=") == 1


def test_head_has_headers_but_no_body() -> None:
    response = paginated(request("", method="HEAD"), ["x", "y"], 2, Window(10, 0, True))
    assert response.content is None
    assert response.headers["X-Result-Count"] == "2"
    assert "X-Result-Count" in response.headers["Access-Control-Expose-Headers"]


def test_get_body_is_the_list() -> None:
    assert paginated(request(""), ("a", "b"), 2, Window(10, 0, True)).content == ["a", "b"]


@pytest.mark.parametrize(("offset", "total"), [(10, 10), (10, 0), (90, 15)])
def test_a_page_past_the_end_is_not_found(offset: int, total: int) -> None:
    with pytest.raises(NotFound, match="Invalid page"):
        paginated(request(""), [], total, Window(10, offset, True))


def test_an_offset_past_the_end_is_an_empty_list() -> None:
    response = paginated(request("offset=50"), [], 3, Window(10, 50, False))
    assert response.content == []
    assert response.headers["X-Result-Count"] == "3"
    assert set(parse_links(response.headers["Link"])) == {"first", "prev", "last"}
