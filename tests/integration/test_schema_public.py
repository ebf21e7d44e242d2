"""The OpenAPI schema and its documentation pages are public; everything under /api/ still needs a token."""

from __future__ import annotations

import re

import pytest
from httpx import AsyncClient


@pytest.mark.parametrize("path", ["/schema", "/schema/openapi.json", "/schema/swagger"])
async def test_schema_pages_need_no_token(client: AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert "tokengate" in response.text


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_the_schema_pages_may_not_be_framed_nor_reach_other_origins(client: AsyncClient, path: str) -> None:
    policy = (await client.get(path)).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "https:" not in policy and "*" not in policy


async def test_an_unknown_schema_page_is_404_not_401(client: AsyncClient) -> None:
    assert (await client.get("/schema/no-such-page")).status_code == 404


async def test_api_paths_are_not_exempted(client: AsyncClient) -> None:
    response = await client.get("/api/personal-access-tokens/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


async def test_the_schema_page_loads_every_asset_from_the_app_itself(client: AsyncClient) -> None:
    page = (await client.get("/schema")).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert len(assets) == 4, assets  # Swagger UI's script, preset, stylesheet and favicon
    assert not re.search(r"https?://", page.split("spec:")[0]), "the page loads something from elsewhere"
    for asset in assets:
        assert asset.startswith("/schema/assets/"), asset
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert response.content, asset
    assert "SwaggerUIBundle" in page
    assert '"openapi":"3.1.0"' in page


async def test_operations_that_need_no_token_say_so(client: AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["security"] == [{"Token": []}]
    public = {path for path, methods in schema["paths"].items() for op in methods.values() if op.get("security") == []}
    assert public == {"/health", "/ready", "/api-auth/password"}
