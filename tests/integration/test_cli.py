"""The ``tokengate`` command: migrations, users, and clear failures on bad configuration."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from service.security.throttle import username_key
from tests.support.app import ROOT

PASSWORD = "s3cret-passw0rd"

pytestmark = pytest.mark.slow


def tokengate(tmp_path: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run the console script's entry point in ``tmp_path`` (no terminal) with a SQLite database there."""
    environ = {
        **os.environ,
        "TOKENGATE_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "TOKENGATE_SECURITY__SECRET_FILE": str(tmp_path / "secret"),
        **env,
    }
    command = [sys.executable, "-c", "from service.cli import main; main()", *args]
    return subprocess.run(
        command, cwd=tmp_path, env=environ, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def unboxed(text: str) -> str:
    """Help and error text without rich-click's box drawing and line wrapping."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


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
    assert "roles.csv:" in result.stderr
    assert "NO.SUCH_PERMISSION" in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[str]:
    """``tokengate run`` on a free loopback port, stopped afterwards; yields its base URL."""
    port = _free_port()
    environ = {
        **os.environ,
        "TOKENGATE_CONFIG": str(tmp_path / "absent.toml"),
        "TOKENGATE_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "TOKENGATE_SECURITY__SECRET_FILE": str(tmp_path / "secret"),
        "TOKENGATE_POLICY_DIR": str(ROOT / "policies"),
    }
    for name in ("FORWARDED_ALLOW_IPS", "UVICORN_PROXY_HEADERS"):  # what an operator may have left set
        environ[name] = "*" if name == "FORWARDED_ALLOW_IPS" else "true"
    command = [sys.executable, "-c", "from service.cli import main; main()", "run", "--port", str(port), *args]
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=tmp_path, env=environ, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_run_believes_no_forwarded_for_by_default(tmp_path: Path, workers: str) -> None:
    """``tokengate run`` with the shipped default: no proxy is trusted, by tokengate or by the server under it.

    A PAT usable only from 10.0.0.0/8 stays refused from loopback whatever ``X-Forwarded-For`` claims — also when
    the environment tells uvicorn to trust every peer's header.
    """
    assert tokengate(tmp_path, "database", "upgrade", "--no-prompt").returncode == 0
    created = tokengate(tmp_path, "users", "create", "alice", "--password", "s3cret-passw0rd", "--staff")
    assert created.returncode == 0, created.stderr
    with serving(tmp_path, "--workers", workers) as base:
        login = httpx.post(f"{base}/api-auth/password/", json={"username": "alice", "password": "s3cret-passw0rd"})
        assert login.status_code == 200, login.text
        key = {"Authorization": f"Token {login.json()['token']}"}
        body = {
            "name": "office",
            "scopes": ["STAFF.ACCESS"],
            "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "allowed_networks": ["10.0.0.0/8"],
        }
        pat = httpx.post(f"{base}/api/personal-access-tokens/", json=body, headers=key)
        assert pat.status_code == 201, pat.text
        pat_header = {"Authorization": f"Token {pat.json()['token']}"}
        for forwarded in ["10.1.2.3", "garbage, 10.1.2.3", "192.0.2.1, 10.1.2.3"]:
            response = httpx.get(
                f"{base}/api/personal-access-tokens/", headers={**pat_header, "X-Forwarded-For": forwarded}
            )
            assert response.status_code == 401, (forwarded, response.text)


def test_users_unlock_clears_a_login_lock(tmp_path: Path) -> None:
    assert tokengate(tmp_path, "database", "upgrade", "--no-prompt").returncode == 0
    with sqlite3.connect(tmp_path / "cli.db") as db:  # alice is locked out; the address's count is not hers
        db.executemany(
            "INSERT INTO login_attempts (key, window_started, attempts) VALUES (?, ?, 99)",
            [(username_key("alice"), time.time()), ("ip:192.0.2.1", time.time())],
        )
    unlocked = tokengate(tmp_path, "users", "unlock", "Alice")
    assert unlocked.returncode == 0, unlocked.stderr
    assert "Cleared the password-login attempts of Alice" in unlocked.stdout
    with sqlite3.connect(tmp_path / "cli.db") as db:
        assert db.execute("SELECT key FROM login_attempts").fetchall() == [("ip:192.0.2.1",)]
        assert db.execute("SELECT count(*) FROM audit_event WHERE event_type = 'auth_login_unlocked'").fetchone() == (
            1,
        )
    again = tokengate(tmp_path, "users", "unlock", "alice")
    assert again.returncode == 0
    assert "No password-login attempts were counted for alice" in again.stdout


def test_users_create_on_a_fresh_database_migrates_it_first_outside_the_repository(tmp_path: Path) -> None:
    created = tokengate(tmp_path, "users", "create", "admin", "--password-stdin", "--staff", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr + created.stdout
    assert "Created staff user admin" in created.stdout
    listed = tokengate(tmp_path, "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[2:5] == ["admin", "staff", "active"]


def test_database_upgrade_never_prompts_without_a_terminal(tmp_path: Path) -> None:
    upgrade = tokengate(tmp_path, "database", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr + upgrade.stdout
    assert "Migrated the database" in upgrade.stdout
    assert "[y/n]" not in upgrade.stdout
    again = tokengate(tmp_path, "database", "upgrade")
    assert again.returncode == 0
    assert "up to date" in again.stdout


def test_set_password_from_a_variable_and_deactivate(tmp_path: Path) -> None:
    assert tokengate(tmp_path, "users", "create", "ann", "--password-env", "NEW_PW", NEW_PW=PASSWORD).returncode == 0
    changed = tokengate(tmp_path, "users", "set-password", "ann", "--password-env", "NEW_PW", NEW_PW="another-passw0rd")
    assert changed.returncode == 0, changed.stderr
    missing = tokengate(tmp_path, "users", "set-password", "ann", "--password-env", "UNSET_PW")
    assert missing.returncode != 0
    assert "UNSET_PW is not set" in unboxed(missing.stderr)
    nobody = tokengate(tmp_path, "users", "deactivate", "nobody")
    assert nobody.returncode != 0
    assert "no user named 'nobody'" in nobody.stderr
    assert tokengate(tmp_path, "users", "deactivate", "ann").returncode == 0
    assert "\tinactive\t" in tokengate(tmp_path, "users", "list").stdout


def test_a_password_is_never_asked_for_without_a_terminal(tmp_path: Path) -> None:
    result = tokengate(tmp_path, "users", "create", "bob")
    assert result.returncode == 2
    assert "use --password-stdin or --password-env NAME" in unboxed(result.stderr)
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_after_a_bounded_wait(tmp_path: Path) -> None:
    result = tokengate(
        tmp_path,
        "users",
        "list",
        TOKENGATE_DATABASE__URL="postgresql+asyncpg://tokengate:hidden@127.0.0.1:9/none",
        TOKENGATE_SERVER__DATABASE_WAIT_SECONDS="2",
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("tokengate: waiting for the database at postgresql+asyncpg://tokengate:***@127.0.0.1:9")
    assert lines[1].startswith("tokengate: cannot reach the database at postgresql+asyncpg://tokengate:***@")
    assert len(lines) == 2
    assert "hidden" not in result.stderr


def test_help_hides_dangerous_framework_commands_and_has_one_style(tmp_path: Path) -> None:
    top = tokengate(tmp_path, "--help").stdout
    assert "users" in top
    assert "run" in top
    assert "sessions" not in top
    database = tokengate(tmp_path, "database", "--help").stdout
    assert "upgrade" in database
    assert all(name not in database for name in ("drop-all", "make-migrations", "init ", "dump-data"))
    explain = tokengate(tmp_path, "policy", "explain", "--help").stdout
    assert "\\b" not in explain
    assert "╭─ Options" in explain
    assert "╭─ Options" in top
