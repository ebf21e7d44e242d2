"""The policy review page shows the invariants of the running policy and whether each holds."""

from __future__ import annotations

import re
from pathlib import Path

from service.policy_tools.invariants import INVARIANTS_FILE, load_invariants
from service.runtime import Runtime
from tests.integration.ui.conftest import SignIn


async def test_the_review_page_lists_every_invariant_as_proved(sign_in: SignIn, runtime: Runtime) -> None:
    alice = await sign_in("alice")
    response = await alice.get("/ui/policy/")
    assert response.status_code == 200
    shipped = load_invariants(Path(runtime.settings.policy_dir) / INVARIANTS_FILE)
    shown = re.findall(r'<li class="(\w+)" data-invariant="([\w-]+)">\s*<strong>(\w+)</strong>', response.text)
    assert shown == [("ok", invariant.name, "proved") for invariant in shipped]
    assert "STAFF.ACCESS never passes a bound token" in response.text
