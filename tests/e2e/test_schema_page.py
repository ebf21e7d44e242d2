"""The OpenAPI page renders, under its Content-Security-Policy, in a real browser that cannot reach anything but the
server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from playwright.async_api import Page, Route, expect

from service.runtime import Runtime
from tests.support.live_server import LiveServer, Seed

Serve = Callable[[Seed], Awaitable[LiveServer]]


async def _nothing(_: Runtime) -> None:
    return None


async def test_the_schema_page_renders_offline(page: Page, serve: Serve) -> None:
    server = await serve(_nothing)
    requested: list[str] = []
    blocked: list[str] = []

    async def only_the_server(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname != "127.0.0.1":
            blocked.append(url)
            await route.abort()
        else:
            await route.continue_()

    await page.route("**/*", only_the_server)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.goto(f"{server.url}/schema")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("tokengate")
    await expect(page.locator(".opblock-summary-path", has_text="/api/personal-access-tokens").first).to_be_visible()
    assert blocked == [], blocked
    assert not [text for text in console if "Content Security Policy" in text], console  # the page runs under it
    assert any(url.endswith("/schema/assets/swagger-ui-bundle.js") for url in requested), requested
