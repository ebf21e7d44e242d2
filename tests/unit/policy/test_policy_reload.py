"""Reloading the rules on SIGHUP: new rules apply at once; broken ones are logged and ignored."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest

from service.policy import PolicyEngine
from service.policy.reload import install_sighup_reload, reload_policy


@pytest.fixture(name="copy")
def fx_copy(policy_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(policy_dir, target)
    return target


def _add(directory: Path, line: str) -> int:
    path = directory / "roles.csv"
    text = path.read_text().rstrip("\n") + "\n"
    path.write_text(f"{text}{line}\n")
    return text.count("\n") + 1


def test_a_broken_reload_keeps_the_rules_and_logs_file_line(copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = PolicyEngine.from_directory(copy)
    rules = engine.roles
    line = _add(copy, "g, NOBODY.ROLE, PROJECT.LIST")
    with caplog.at_level(logging.ERROR, logger="tokengate.policy"):
        assert reload_policy(engine, copy) is False
    assert engine.roles is rules
    assert caplog.messages == [
        f"{copy / 'roles.csv'}:{line}: unknown role NOBODY.ROLE (declare it with a p2 line) "
        "(policy reload failed: the previous rules stay in force)"
    ]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
async def test_sighup_reloads_the_running_engine(copy: Path) -> None:
    engine = PolicyEngine.from_directory(copy)

    async def reload() -> bool:
        return reload_policy(engine, copy)

    remove = install_sighup_reload(reload)
    try:
        _add(copy, "g, PROJECT.MEMBER, PROJECT.UPDATE")
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if "PROJECT.UPDATE" in engine.roles["PROJECT.MEMBER"].permissions:
                break
        assert "PROJECT.UPDATE" in engine.roles["PROJECT.MEMBER"].permissions
    finally:
        remove()
