"""A running app reloads its policy on SIGHUP; a broken edit keeps the old rules in force."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import msgspec

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime
from tests.support.app import ROOT, http_client, running
from tests.support.authz import is_denial
from tests.support.factories import auth, make_entity, user_with_key


async def hangup() -> None:
    os.kill(os.getpid(), signal.SIGHUP)
    await asyncio.sleep(0.05)  # the handler runs on the event loop


async def test_sighup_reloads_policy_and_survives_a_broken_edit(settings: Settings, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    app = create_app(msgspec.structs.replace(settings, policy_dir=str(policies)))
    runtime: Runtime = app.state.runtime
    async with running(app):
        assert "RESOURCE.TERMINATE" not in runtime.policy.roles["PROJECT.MEMBER"].permissions
        roles = policies / "roles.csv"
        roles.write_text(roles.read_text() + "g, PROJECT.MEMBER, RESOURCE.TERMINATE\n")
        await hangup()
        assert "RESOURCE.TERMINATE" in runtime.policy.roles["PROJECT.MEMBER"].permissions
        roles.write_text(roles.read_text() + "g, PROJECT.MEMBER, NO.SUCH_PERMISSION\n")
        await hangup()
        assert "RESOURCE.TERMINATE" in runtime.policy.roles["PROJECT.MEMBER"].permissions
    await runtime.alchemy.get_engine().dispose()


async def test_a_wrong_model_is_refused_on_sighup_and_nothing_answers_5xx(settings: Settings, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    app = create_app(msgspec.structs.replace(settings, policy_dir=str(policies)))
    runtime: Runtime = app.state.runtime
    model = policies / "model.conf"
    good = model.read_text()
    wrong = [
        good.replace('g3(r.perm, "permission")', 'g3(r.perm, "permission") && no_such_function(r.obj)'),
        good.replace("r.perm in r.token.scopes", "r.perm in r.tokn.scopes"),
        good.replace("e = some(where (p.eft == allow))", "e = !some(where (p.eft == deny))"),
        good.replace("g2(r.obj, p.entity))\n", "g2(r.obj, p.entity)) # inherited\n"),
    ]
    async with running(app), http_client(app) as client:
        _, key = await user_with_key(runtime, "someone")
        customer = await make_entity(runtime, "customer")
        rules = runtime.policy.rules
        for text in wrong:
            assert text != good
            model.write_text(text)
            await hangup()
            assert runtime.policy.rules is rules  # refused: the old model stays in force
            body = {"permission": "PROJECT.UPDATE", "entity": {"type": "customer", "uuid": str(customer.uuid)}}
            response = await client.post("/api/authz/check/", json=body, headers=auth(key))
            assert is_denial(response, "customer", customer.uuid)  # refused, never a 5xx
    await runtime.alchemy.get_engine().dispose()
