"""The OpenAPI schema and its documentation pages are public; everything under /api/ still needs a token."""

from __future__ import annotations

import pytest
from httpx import AsyncClient


@pytest.mark.parametrize("path", ["/schema", "/schema/openapi.json", "/schema/swagger", "/schema/redoc"])
async def test_schema_pages_need_no_token(client: AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert "tokengate" in response.text


async def test_an_unknown_schema_page_is_404_not_401(client: AsyncClient) -> None:
    assert (await client.get("/schema/no-such-page")).status_code == 404


async def test_api_paths_are_not_exempted(client: AsyncClient) -> None:
    response = await client.get("/api/personal-access-tokens/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
