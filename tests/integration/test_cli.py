"""The ``tokengate`` command: migrations, users, and clear failures on bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def tokengate(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the console script's entry point in ``tmp_path`` with a SQLite database there."""
    environ = {
        **os.environ,
        "TOKENGATE_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "TOKENGATE_SECURITY__SECRET_FILE": str(tmp_path / "secret"),
        "TOKENGATE_POLICY_DIR": str(ROOT / "policies"),
        **env,
    }
    command = [sys.executable, "-c", "from service.cli import main; main()", *args]
    return subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120, check=False)


def test_upgrade_then_create_staff_user(tmp_path: Path) -> None:
    upgrade = tokengate(tmp_path, "database", "upgrade", "--no-prompt")
    assert upgrade.returncode == 0, upgrade.stderr + upgrade.stdout
    created = tokengate(tmp_path, "users", "create", "admin", "--password", "s3cret-passw0rd", "--staff")
    assert created.returncode == 0, created.stderr + created.stdout
    assert "Created staff user admin" in created.stdout
    duplicate = tokengate(tmp_path, "users", "create", "admin", "--password", "s3cret-passw0rd")
    assert duplicate.returncode != 0
    assert "already exists" in duplicate.stderr + duplicate.stdout
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TOKENGATE_TOKENS__PAT_MAX_PER_USER": "many"}, "$.tokens.pat_max_per_user"),
        ({"TOKENGATE_TOKENS__NO_SUCH_KEY": "1"}, "unknown field `no_such_key`"),
    ],
)
def test_bad_configuration_is_one_clear_line(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    result = tokengate(tmp_path, "info", **env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_policy_names_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    broken.mkdir()
    for source in (ROOT / "policies").iterdir():
        if source.is_file():
            (broken / source.name).write_text(source.read_text())
    (broken / "roles.csv").write_text((broken / "roles.csv").read_text() + "g, CUSTOMER.OWNER, NO.SUCH_PERMISSION\n")
    result = tokengate(tmp_path, "info", TOKENGATE_POLICY_DIR=str(broken))
    assert result.returncode == 2
    assert "roles.csv:" in result.stderr and "NO.SUCH_PERMISSION" in result.stderr
