"""The pages in a real browser: sign in, manage a token end to end, CSRF, policy review, staff administration."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, expect

from service.runtime import Runtime
from tests.support.factories import grant, make_entity, make_user
from tests.support.live_server import LiveServer, Seed

PASSWORD = "correct horse battery"
Serve = Callable[[Seed], Awaitable[LiveServer]]


async def seed_people(runtime: Runtime) -> None:
    """alice manages project Apollo of customer Acme; root is staff."""
    alice = await make_user(runtime, "alice", password=PASSWORD)
    await make_user(runtime, "root", password=PASSWORD, staff=True)
    acme = await make_entity(runtime, "customer", "Acme")
    apollo = await make_entity(runtime, "project", "Apollo", parent=acme)
    await make_entity(runtime, "project", "Zeus", parent=acme)
    await grant(runtime, alice, "PROJECT.MANAGER", apollo)


async def sign_in(page: Page, server: LiveServer, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{server.url}/ui/sign-in")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def shoot(page: Page, directory: Path, name: str) -> None:
    await page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


async def assert_accessible_basics(page: Page) -> None:
    """Every visible form control has a label; the skip link shows when focused and moves focus to the content."""
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
                 .map(el => el.name || el.id)"""
    )
    assert unlabelled == []
    skip = page.get_by_role("link", name="Skip to content")
    await skip.focus()
    await expect(skip).to_be_in_viewport()
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"


async def check(token: str, server: LiveServer, permission: str, entity: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.post(
            "/api/authz/check/",
            headers={"Authorization": f"Token {token}"},
            json={"permission": permission, "entity": entity},
        )


async def project_uuid(server: LiveServer, page: Page, name: str) -> str:
    """The UUID of project ``name``, from the binding choices of the create form."""
    value = await page.get_by_label(name).get_attribute("value")
    assert value is not None
    assert value.startswith("project:")
    return value.split(":", 1)[1]


async def settled_content(page: Page) -> str:
    """The page's HTML once a navigation in flight (going back to a POST's answer starts one) has finished."""
    for _ in range(50):
        await page.wait_for_load_state()
        try:
            return await page.content()
        except PlaywrightError as exc:
            if "navigating" not in exc.message:
                raise
    raise AssertionError("the page kept navigating")


async def test_token_lifecycle_in_the_browser(page: Page, serve: Serve, screenshot_dir: Path) -> None:
    server = await serve(seed_people)
    await page.goto(f"{server.url}/ui/tokens")
    await expect(page).to_have_url(re.compile(r"/ui/sign-in\?next=/ui/tokens"))
    await assert_accessible_basics(page)
    await shoot(page, screenshot_dir, "sign-in")
    await sign_in(page, server, "alice")
    await expect(page.get_by_role("heading", name="My tokens")).to_be_visible()

    await page.get_by_role("link", name="Create a token").click()
    await assert_accessible_basics(page)
    await page.get_by_label("Name", exact=True).fill("deploy bot")
    await page.get_by_label("PROJECT.UPDATE", exact=True).check()
    apollo = await project_uuid(server, page, "Apollo")
    await page.get_by_label("Apollo").check()
    await page.get_by_label("Networks").fill("127.0.0.0/8")
    await shoot(page, screenshot_dir, "token-create")
    await page.get_by_role("button", name="Create token").click()

    await expect(page.get_by_text("This is the only time the token is shown.")).to_be_visible()
    plaintext = await page.get_by_label("Your new token").input_value()
    assert plaintext.startswith("w_")  # a PAT
    await page.get_by_role("button", name="Copy").click()
    await shoot(page, screenshot_dir, "token-copy-once")

    target = {"type": "project", "uuid": apollo}
    allowed = await check(plaintext, server, "PROJECT.UPDATE", target)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["allowed"] is True
    denied = await check(plaintext, server, "PROJECT.DELETE_PERMISSION", target)
    assert denied.json()["allowed"] is False

    # no page shown after the copy-once panel carries the token (nor do the cookies, nor going back to it)
    await page.get_by_role("link", name="Done: back to my tokens").click()
    try:
        await page.go_back()
    except PlaywrightError as exc:  # the answer to a POST, never stored: chromium would have to post again
        assert "ERR_CACHE_MISS" in exc.message
    assert plaintext not in await settled_content(page)
    assert plaintext not in await page.evaluate("[...document.querySelectorAll('input')].map(i => i.value).join()")
    await page.goto(f"{server.url}/ui/tokens")
    row = page.locator("tr", has_text="deploy bot")
    await expect(row).to_contain_text("PROJECT.UPDATE")
    await expect(row).to_contain_text("project: Apollo")
    await expect(row).to_contain_text("127.0.0.0/8")
    await shoot(page, screenshot_dir, "tokens")
    for path in ["/ui/tokens", "/ui/tokens/new", "/ui/activity", "/ui/policy"]:
        response = await page.goto(f"{server.url}{path}")
        assert response is not None
        assert response.status == 200
        assert plaintext not in await page.content(), path
    await page.goto(f"{server.url}/ui/tokens")
    await page.get_by_role("link", name="Revoke deploy bot").click()
    assert plaintext not in await page.content()
    assert all(plaintext not in cookie["value"] for cookie in await page.context.cookies())
    await shoot(page, screenshot_dir, "token-revoke")
    await page.get_by_role("button", name="Revoke token").click()

    await expect(page.locator("section", has_text="Revoked").locator("tr", has_text="deploy bot")).to_contain_text(
        "revoked"
    )
    refused = await check(plaintext, server, "PROJECT.UPDATE", target)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid token."}
    async with httpx.AsyncClient(base_url=server.url) as client:
        key = (await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})).json()
        for path in ["/api/personal-access-tokens/", "/api/events/"]:
            answer = await client.get(path, headers={"Authorization": f"Token {key['token']}"})
            assert answer.status_code == 200, path
            assert plaintext not in answer.text, path

    await page.get_by_role("link", name="My activity").click()
    await expect(page.locator("tbody tr", has_text="pat_revoked")).to_contain_text("deploy bot has been revoked")
    await shoot(page, screenshot_dir, "activity")

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"{server.url}/ui/tokens")
    await shoot(page, screenshot_dir, "tokens-narrow")


async def test_wrong_password_shows_the_error(page: Page, serve: Serve, screenshot_dir: Path) -> None:
    server = await serve(seed_people)
    await sign_in(page, server, "alice", "not the password")
    error = page.locator("#password-errors")
    await expect(error).to_have_text("Invalid username/password.")
    await expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("Password")).to_be_focused()  # ready for another try
    await shoot(page, screenshot_dir, "sign-in-error")
    assert all(cookie["name"] != "tokengate_session" for cookie in await page.context.cookies())


async def test_a_form_without_its_csrf_token_is_refused(page: Page, serve: Serve) -> None:
    server = await serve(seed_people)
    await sign_in(page, server, "alice")
    await page.goto(f"{server.url}/ui/tokens/new")
    await page.get_by_label("Name", exact=True).fill("forged")
    await page.get_by_label("PROJECT.UPDATE", exact=True).check()
    await page.evaluate("document.querySelectorAll('input[name=_csrf_token]').forEach(el => el.remove())")
    async with page.expect_response(re.compile(r"/ui/tokens/new$")) as answer:
        await page.get_by_role("button", name="Create token").click()
    assert (await answer.value).status == 403
    await expect(page.get_by_role("alert")).to_contain_text("not sent from a page of this site")
    await page.goto(f"{server.url}/ui/tokens")
    await expect(page.get_by_text("forged")).to_have_count(0)


async def test_policy_page_matches_the_api(page: Page, serve: Serve, screenshot_dir: Path) -> None:
    server = await serve(seed_people)
    async with httpx.AsyncClient(base_url=server.url) as client:
        key = (await client.post("/api-auth/password/", json={"username": "alice", "password": PASSWORD})).json()
        matrix = (await client.get("/api/policy/matrix/", headers={"Authorization": f"Token {key['token']}"})).json()
    await sign_in(page, server, "alice")
    await page.get_by_role("link", name="Policy").click()
    await assert_accessible_basics(page)
    checked = 0
    for permission in matrix["permissions"][:12]:
        for role in matrix["roles"]:
            cell = page.locator(f'td[data-role="{role["name"]}"][data-permission="{permission["name"]}"]')
            granted = role["name"] in permission["granted_by"]
            await expect(cell).to_have_class(re.compile(r"\byes\b" if granted else r"\bno\b"))
            checked += granted
    assert checked > 0
    cell = page.locator('td[data-role="PROJECT.MANAGER"][data-permission="PROJECT.UPDATE"]')
    await expect(cell).to_contain_text("PROJECT.MANAGER grants PROJECT.UPDATE")
    await shoot(page, screenshot_dir, "policy")

    await page.get_by_role("link", name="Explain a decision").click()
    await page.get_by_label("Permission", exact=True).select_option("STAFF.ACCESS")
    await page.get_by_role("button", name="Explain").click()
    await expect(page.locator("pre.trace")).to_contain_text("DENY  alice  STAFF.ACCESS")
    await page.get_by_label("Username").fill("root")
    await page.get_by_role("button", name="Explain").click()
    await expect(page.locator("#username-errors")).to_contain_text("yourself and your own tokens")
    await shoot(page, screenshot_dir, "policy-explain")


async def test_staff_grant_and_revoke_a_role(page: Page, serve: Serve, screenshot_dir: Path) -> None:
    server = await serve(seed_people)
    await sign_in(page, server, "alice")
    refused = await page.goto(f"{server.url}/ui/staff/users")
    assert refused is not None
    assert refused.status == 403
    await page.context.clear_cookies()

    await sign_in(page, server, "root")
    await page.get_by_role("link", name="Staff").click()
    await page.get_by_label("Search by username, name or email").fill("ali")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("tbody tr")).to_have_count(1)
    await shoot(page, screenshot_dir, "staff-users")
    await page.get_by_role("link", name="Entity tree").click()
    await expect(page.locator(".tree li.depth-1", has_text="Zeus")).to_be_visible()
    await shoot(page, screenshot_dir, "staff-entities")

    await page.get_by_role("link", name="Role assignments").click()
    await page.get_by_label("Username", exact=True).first.fill("alice")
    await page.get_by_label("Role", exact=True).first.select_option("PROJECT.MEMBER")
    await page.get_by_label("On entity").select_option(label="project: Zeus")
    await page.get_by_role("button", name="Grant role").click()
    row = page.locator("tbody tr", has_text="Zeus")
    await expect(row).to_contain_text("PROJECT.MEMBER")
    await expect(row).to_contain_text("active")

    await page.get_by_label("Username", exact=True).first.fill("nobody")
    await page.get_by_role("button", name="Grant role").click()
    await expect(page.locator("#user-errors")).to_have_text("No user with that username.")
    await page.goto(f"{server.url}/ui/staff/assignments")
    await shoot(page, screenshot_dir, "staff-assignments")

    await page.get_by_role("button", name="Revoke PROJECT.MEMBER of alice on Zeus").click()
    await expect(page.locator("tbody tr", has_text="Zeus")).to_contain_text("revoked")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx must reach 127.0.0.1 directly, whatever the environment says about proxies."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
