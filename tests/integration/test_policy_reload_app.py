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
from tests.conftest import ROOT, running


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
