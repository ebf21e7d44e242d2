"""The README's recipe for listing PATs with the published ``waldur-api-client``, run against a live server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from waldur_api_client import AuthenticatedClient
from waldur_api_client.api.personal_access_tokens import personal_access_tokens_list

from service.db import upgrade_database
from tests.support.app import ROOT, make_settings
from tests.support.served import SECRET, Served, create_pat, owner_with_pat_rights

pytestmark = pytest.mark.slow


def readme_recipe() -> dict[str, Any]:
    """Execute the README's recipe (the Python block after its marker) and return what it defines."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- waldur-pat-recipe -->\s*```python\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md lost its waldur-api-client recipe"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)
    return namespace


def test_the_readme_recipe_lists_a_never_used_token(tmp_path: Path) -> None:
    list_tokens = readme_recipe()["list_tokens"]
    url = f"sqlite+aiosqlite:///{tmp_path / 'recipe.db'}"
    upgrade_database(make_settings(url, tmp_path, TOKENGATE_SECURITY__SECRET=SECRET))
    key = asyncio.run(owner_with_pat_rights(url, tmp_path))
    served = Served(
        url, tmp_path, workers=1, TOKENGATE_TOKENS__USAGE_FLUSH_SECONDS="0.2", TOKENGATE_TOKENS__USAGE_WRITE_SECONDS="0"
    )
    try:
        served.start()
        with httpx.Client(base_url=served.base_url, timeout=10) as client:
            used, idle = create_pat(client, key), create_pat(client, key)
            assert client.get("/api/events/", headers={"Authorization": f"Token {used['token']}"}).status_code == 200
        waldur = AuthenticatedClient(base_url=served.base_url, token=key)
        with pytest.raises(TypeError):  # the published client's own list call cannot parse a never-used token
            personal_access_tokens_list.sync(client=waldur)
        deadline = 50
        while deadline:  # the use is written by the next usage flush
            tokens = {str(token.uuid): token for token in list_tokens(waldur)}
            if tokens[used["uuid"]].last_used_at is not None:
                break
            deadline -= 1
            asyncio.run(asyncio.sleep(0.1))
        assert set(tokens) == {used["uuid"], idle["uuid"]}
        assert tokens[idle["uuid"]].last_used_at is None
        assert tokens[idle["uuid"]].last_used_ip is None
        assert tokens[used["uuid"]].last_used_at is not None
        assert tokens[used["uuid"]].last_used_ip == "127.0.0.1"
        assert tokens[idle["uuid"]].token_prefix != tokens[used["uuid"]].token_prefix
    finally:
        served.kill_all()
