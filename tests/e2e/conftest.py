"""Browser fixtures shared by every end-to-end test: Debian's chromium driven by Playwright, and a real server.

Playwright's async API runs on the test's event loop (its sync API keeps a loop of its own marked as running, which
the database fixtures' ``asyncio.run`` refuses). The server is the app under uvicorn on 127.0.0.1 in a thread of the
test process, over the parametrised database (SQLite and PostgreSQL). Data is seeded through the domain services
before it starts, so its mirror of entities and roles loads them. Screenshots go to ``$TOKENGATE_SCREENSHOT_DIR``
when set (``docs/screenshots`` refreshes the documentation's), otherwise to a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime
from tests.support.app import reset_database
from tests.support.live_server import LiveServer, Seed, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR_ENV = "TOKENGATE_SCREENSHOT_DIR"
WAIT_MS = 15_000  # for a page or an expectation: the machine may be busy running other tests

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system browser (``.ci/run`` installs Debian's package)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """A headless chromium for one test."""
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A fresh browser context (no cookies) and page."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    yield await context.new_page()
    await context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where tests save their screenshots."""
    configured = os.environ.get(SCREENSHOT_DIR_ENV)
    directory = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Callable[[Seed], Awaitable[LiveServer]]]:
    """``await serve(seed)``: run ``seed(runtime)`` on the database, then start the server; stopped after the test."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []
    seeding = Runtime.build(settings)

    async def start(seed: Seed) -> LiveServer:
        await seed(seeding)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the server did not start")
            await asyncio.sleep(0.05)
        return LiveServer(url=f"http://127.0.0.1:{port}", settings=settings)

    yield start
    for server, thread in servers:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
    await reset_database(seeding)
    await seeding.alchemy.get_engine().dispose()
