"""``tokengate policy explain --user/--token`` through the command line, on a database of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from service.db import upgrade_database
from service.policy_tools.cli import policy_group
from tests.support.app import ROOT, make_settings


@pytest.fixture(name="database")
def fx_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migrated SQLite database that the command finds through ``TOKENGATE_*`` variables."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade_database(make_settings(url, tmp_path))
    monkeypatch.setenv("TOKENGATE_DATABASE__URL", url)
    monkeypatch.setenv("TOKENGATE_SECURITY__SECRET", "test-secret-" + "x" * 40)
    monkeypatch.setenv("TOKENGATE_POLICY_DIR", str(ROOT / "policies"))
    monkeypatch.setenv("TOKENGATE_CONFIG", str(tmp_path / "absent.toml"))


@pytest.mark.usefixtures("database")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "ghost", "RESOURCE.LIST"], "Error: no user 'ghost'"),
        (
            ["--token", "00000000-0000-0000-0000-000000000000", "RESOURCE.LIST"],
            "Error: no personal access token with uuid 00000000-0000-0000-0000-000000000000",
        ),
        (["--token", "not-a-uuid", "RESOURCE.LIST"], "Error: badly formed hexadecimal UUID string"),
    ],
)
def test_explain_from_the_database_reports_unknown_subjects(args: list[str], message: str) -> None:
    result = CliRunner().invoke(policy_group, ["explain", *args])
    assert result.exit_code == 1
    assert "Error" in result.output
    assert message.removeprefix("Error: ") in " ".join(result.output.split())
