"""Data migrations keep what they must: 0003 resolves duplicate active assignments, 0004 marks dead bindings."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

from service.db import upgrade_database
from tests.support.app import make_settings

NOW = "2026-11-30 12:00:00.000000"


def insert_user(db: sqlite3.Connection) -> None:
    """User 1, alice."""
    db.execute(
        "INSERT INTO user_account (id, uuid, username, first_name, last_name, email, mobile_number, "
        "is_active, is_staff, can_use_personal_access_tokens, password_hash, created_at, updated_at) "
        "VALUES (1, ?, 'alice', '', '', '', '', 1, 0, 1, '', ?, ?)",
        (uuid.uuid4().hex, NOW, NOW),
    )


def test_0003_keeps_the_newest_of_duplicate_active_assignments(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    settings = make_settings(f"sqlite+aiosqlite:///{path}", tmp_path)
    upgrade_database(settings, "0002")
    with sqlite3.connect(path) as db:
        insert_user(db)
        db.execute(
            "INSERT INTO entity (id, uuid, type, name, created_at, updated_at) VALUES (1, ?, 'project', 'web', ?, ?)",
            (uuid.uuid4().hex, NOW, NOW),
        )
        rows = [(1, "PROJECT.ADMIN", 1), (2, "PROJECT.ADMIN", 1), (3, "PROJECT.MEMBER", 1), (4, "PROJECT.ADMIN", 0)]
        for row_id, role, active in rows:  # 1 and 2: the duplicates a race could leave
            values = (row_id, uuid.uuid4().hex, role, active, NOW, NOW)
            db.execute(
                "INSERT INTO role_assignment (id, uuid, user_id, role, entity_id, is_active, created_at, "
                "updated_at) VALUES (?, ?, 1, ?, 1, ?, ?, ?)",
                values,
            )
    upgrade_database(settings)
    with sqlite3.connect(path) as db:
        active = dict(db.execute("SELECT id, is_active FROM role_assignment ORDER BY id").fetchall())
        assert active == {1: 0, 2: 1, 3: 1, 4: 0}
        try:  # and from now on the database itself refuses a second active one
            db.execute(
                "INSERT INTO role_assignment (id, uuid, user_id, role, entity_id, is_active, created_at, "
                "updated_at) VALUES (5, ?, 1, 'PROJECT.ADMIN', 1, 1, ?, ?)",
                (uuid.uuid4().hex, NOW, NOW),
            )
        except sqlite3.IntegrityError as exc:
            assert "UNIQUE" in str(exc)
        else:
            raise AssertionError("a second active PROJECT.ADMIN assignment was accepted")


def test_0007_starts_a_rotation_family_for_each_existing_token(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    settings = make_settings(f"sqlite+aiosqlite:///{path}", tmp_path)
    upgrade_database(settings, "0003")
    token_uuids = [uuid.uuid4().hex, uuid.uuid4().hex]
    with sqlite3.connect(path) as db:
        insert_user(db)
        for row_id, token_uuid in enumerate(token_uuids, start=1):
            db.execute(
                "INSERT INTO personal_access_token (id, uuid, user_id, name, token_prefix, token_hash, scopes, "
                "allowed_scopes, allowed_networks, expires_at, is_active, use_count, created_at, updated_at) "
                "VALUES (?, ?, 1, 'ci', 'w_123456', ?, '[]', '[]', '[]', ?, 1, 0, ?, ?)",
                (row_id, token_uuid, f"{row_id:064d}", NOW, NOW, NOW),
            )
    upgrade_database(settings)
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT uuid, family_id, rotated_at, expiry_notice_days FROM personal_access_token ORDER BY id"
        ).fetchall()
        assert rows == [(token_uuid, token_uuid, None, None) for token_uuid in token_uuids]
        assert db.execute("SELECT COUNT(*) FROM webhook_delivery").fetchone() == (0,)


def test_0004_marks_bindings_whose_entity_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    settings = make_settings(f"sqlite+aiosqlite:///{path}", tmp_path)
    upgrade_database(settings, "0003")
    kept, gone, retyped = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    bindings = [
        {"type": "project", "uuid": str(kept)},
        {"type": "project", "uuid": str(gone)},  # deleted before marks existed
        {"type": "project", "uuid": str(retyped)},  # deleted, then registered again as a customer
    ]
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO user_account (id, uuid, username, first_name, last_name, email, mobile_number, "
            "is_active, is_staff, can_use_personal_access_tokens, password_hash, created_at, updated_at) "
            "VALUES (1, ?, 'alice', '', '', '', '', 1, 0, 1, '', ?, ?)",
            (uuid.uuid4().hex, NOW, NOW),
        )
        for entity_id, (entity_uuid, entity_type) in enumerate([(kept, "project"), (retyped, "customer")], 1):
            db.execute(
                "INSERT INTO entity (id, uuid, type, name, created_at, updated_at) VALUES (?, ?, ?, 'e', ?, ?)",
                (entity_id, entity_uuid.hex, entity_type, NOW, NOW),
            )
        db.execute(
            "INSERT INTO personal_access_token (id, uuid, user_id, name, token_prefix, token_hash, scopes, "
            "allowed_scopes, allowed_networks, expires_at, is_active, use_count, created_at, updated_at) "
            "VALUES (1, ?, 1, 'ci', 'tgp_', 'h', '[]', ?, '[]', ?, 1, 0, ?, ?)",
            (uuid.uuid4().hex, json.dumps(bindings), NOW, NOW, NOW),
        )
    upgrade_database(settings)
    with sqlite3.connect(path) as db:
        stored = json.loads(db.execute("SELECT allowed_scopes FROM personal_access_token").fetchone()[0])
    assert [bool(b.get("deleted")) for b in stored] == [False, True, True]
    assert [(b["type"], b["uuid"]) for b in stored] == [(b["type"], b["uuid"]) for b in bindings]
