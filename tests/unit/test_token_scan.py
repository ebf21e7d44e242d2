"""Finding tokengate tokens in text offline: prefix, shape and checksum; look-alikes are skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from service.crypto import display_prefix, new_legacy_key, new_pat
from service.leaks.cli import REVOCATION_PATH, scan_text
from tests.support.pats import flip_last
from tests.support.receiver import Receiver

PAT = new_pat(int(time.time()) + 3600)
KEY = new_legacy_key()
LOOK_ALIKES = [
    flip_last(new_pat(int(time.time()) + 3600)),  # bad checksum
    flip_last(new_legacy_key()),
    PAT.replace("w_1", "w_2", 1),  # another expiry: the checksum no longer matches
    "x" + new_pat(int(time.time()) + 60),  # glued to a longer word
    new_legacy_key() + "Z",
    "ghp_" + "a" * 36,
    "w_123_" + "A" * 48,  # one character short
]
TEXT = "\n".join(
    [
        "# deploy notes",
        f"export TOKEN={PAT}",
        *(f"fake: {s}" for s in LOOK_ALIKES),
        f'{{"key": "{KEY}", "again": "{PAT}"}}',
    ]
)
SECOND_PAT_COLUMN = len('{"key": "') + len(KEY) + len('", "again": "') + 1


def test_scan_finds_exactly_the_valid_tokens_with_their_positions() -> None:
    found = scan_text(TEXT)
    assert found == [(2, 14, PAT), (10, 10, KEY), (10, SECOND_PAT_COLUMN, PAT)]


def run_scan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from service.cli import main; main()", "tokens", "scan", *args]
    environ = {**os.environ, "TOKENGATE_DATABASE__URL": "sqlite+aiosqlite:////nonexistent/no.db"}
    return subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60, check=False)


def test_the_command_prints_locations_and_prefixes_only(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text(TEXT)
    (tmp_path / "clean.txt").write_text("nothing here\n")
    result = run_scan(tmp_path, "notes.txt", "clean.txt")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        "notes.txt:2:14",
        "notes.txt:10:10",
        f"notes.txt:10:{SECOND_PAT_COLUMN}",
    ]
    assert PAT not in result.stdout
    assert KEY not in result.stdout
    assert lines[0].endswith(f" {display_prefix(PAT)}…")
    assert run_scan(tmp_path, "clean.txt").returncode == 0


def test_revoke_sends_each_token_once_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text(TEXT)
    with Receiver(default_status=202) as receiver:
        result = run_scan(tmp_path, "notes.txt", "--revoke", receiver.url, "--source", "https://paste.example/1")
    assert result.returncode == 0, result.stderr
    [sent] = receiver.received
    assert sent.path == REVOCATION_PATH
    assert json.loads(sent.body) == {"credentials": [PAT, KEY], "source": "https://paste.example/1"}


def test_a_refused_report_fails_the_command(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text(TEXT)
    with Receiver(default_status=429) as receiver:
        result = run_scan(tmp_path, "notes.txt", "--revoke", receiver.url)
    assert result.returncode == 1
    assert "answered 429" in result.stderr
    assert json.loads(receiver.received[0].body)["source"] == "notes.txt"
