"""Token formats and the keyring: the constants that shape tokens are pinned here."""

from __future__ import annotations

import hashlib
import hmac
import math
import stat
import sys
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from service import crypto
from service.crypto import (
    BASE62,
    Keyring,
    display_prefix,
    is_legacy_key,
    load_secret,
    new_legacy_key,
    new_pat,
    pat_expiry,
)

EXPIRY = 1_900_000_000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAT_PREFIX", "w_"),
        ("LEGACY_PREFIX", "tgl_"),
        ("RANDOM_BYTES", 32),
        ("RANDOM_CHARS", 43),
        ("CHECKSUM_CHARS", 6),
        ("PAT_DISPLAY_RANDOM_CHARS", 8),
        ("PAT_DISPLAY_MAX_CHARS", 32),
        ("LEGACY_DISPLAY_CHARS", 12),
        ("HASH_HEX_CHARS", 64),
        ("MAX_TOKEN_CHARS", 128),
    ],
)
def test_format_constants_are_pinned(name: str, value: object) -> None:
    assert getattr(crypto, name) == value


def test_lengths_carry_the_promised_bits() -> None:
    assert len(BASE62) == 62
    assert len(set(BASE62)) == 62
    assert "_" not in BASE62
    assert crypto.RANDOM_CHARS == math.ceil(crypto.RANDOM_BYTES * 8 / math.log2(62))  # >= 256 bits
    assert 62**crypto.CHECKSUM_CHARS >= 2**32  # CRC-32 fits


def test_pat_shape_and_expiry() -> None:
    token = new_pat(EXPIRY)
    assert token.startswith(f"w_{EXPIRY}_")
    assert len(token) == len(f"w_{EXPIRY}_") + crypto.RANDOM_CHARS + crypto.CHECKSUM_CHARS
    assert pat_expiry(token) == EXPIRY
    assert display_prefix(token) == token[: len(f"w_{EXPIRY}_") + 8]
    assert new_pat(EXPIRY) != token


def test_pat_prefixes_of_one_day_tell_the_tokens_apart() -> None:
    prefixes = {display_prefix(new_pat(EXPIRY)) for _ in range(50)}
    assert len(prefixes) == 50  # Waldur's first 8 characters would be one value here
    assert all(prefix.startswith(f"w_{EXPIRY}_") for prefix in prefixes)
    assert all(len(prefix) <= crypto.PAT_DISPLAY_MAX_CHARS for prefix in prefixes)


def test_legacy_key_shape() -> None:
    key = new_legacy_key()
    assert key.startswith("tgl_")
    assert len(key) == 4 + crypto.RANDOM_CHARS + crypto.CHECKSUM_CHARS
    assert is_legacy_key(key)
    assert display_prefix(key) == key[:12]
    assert pat_expiry(key) is None
    assert not is_legacy_key(new_pat(EXPIRY))


def _swap(char: str) -> str:
    return BASE62[(BASE62.index(char) + 1) % 62] if char in BASE62 else "0"


def test_every_one_character_change_of_a_pat_is_rejected() -> None:
    token = new_pat(EXPIRY)
    for position in range(len("w_"), len(token)):
        if token[position] == "_":
            continue
        changed = token[:position] + _swap(token[position]) + token[position + 1 :]
        assert pat_expiry(changed) is None, position


def test_every_one_character_change_of_a_legacy_key_is_rejected() -> None:
    key = new_legacy_key()
    for position in range(len(key)):
        changed = key[:position] + _swap(key[position]) + key[position + 1 :]
        assert not is_legacy_key(changed), position


@pytest.mark.parametrize(
    "token",
    [
        "",
        "w_",
        "w__",
        "w_abc_" + "A" * 49,  # expiry not a number
        "w_-5_" + "A" * 49,
        "w_١٢٣_" + "A" * 49,  # non-ASCII digits
        "w_1234567890123_" + "A" * 49,  # 13-digit expiry
        "W_1900000000_" + "A" * 49,  # prefix is case-sensitive
        "w_1900000000_" + "A" * 48,  # one character short
        "w_1900000000_" + "A" * 200,  # longer than MAX_TOKEN_CHARS
        "w_1900000000",
    ],
)
def test_malformed_pats_have_no_expiry(token: str) -> None:
    assert pat_expiry(token) is None


def test_expiry_is_read_with_at_most_two_splits() -> None:
    # Waldur's tooling reads the expiry with token.split("_", 2): the random part may contain "_".
    waldur_style = f"w_{EXPIRY}_abc_def-ghi"
    assert waldur_style.split("_", 2) == ["w", str(EXPIRY), "abc_def-ghi"]
    assert pat_expiry(waldur_style) is None  # not ours (no checksum), but no crash and no misread
    ours = new_pat(EXPIRY)
    assert int(ours.split("_", 2)[1]) == EXPIRY == pat_expiry(ours)
    assert len(ours.split("_")) == 3  # our random alphabet has no "_", so any splitter agrees


@pytest.fixture(name="keyring")
def fx_keyring() -> Keyring:
    return Keyring.from_secret(b"unit-test-secret")


def test_hash_is_keyed_deterministic_hex(keyring: Keyring) -> None:
    key = new_legacy_key()
    digest = keyring.token_hash(key)
    assert len(digest) == crypto.HASH_HEX_CHARS
    assert int(digest, 16) >= 0
    assert digest == Keyring.from_secret(b"unit-test-secret").token_hash(key)
    assert digest != Keyring.from_secret(b"another-secret").token_hash(key)
    assert digest != keyring.token_hash(key[:-1] + _swap(key[-1]))
    assert keyring.hash_key != keyring.encryption_key


@pytest.mark.parametrize("key_bytes", [1, 32, 64, 65, 200])
def test_the_token_hash_is_hmac_sha256_of_the_token(key_bytes: int) -> None:
    hash_key = bytes(range(256))[:key_bytes]
    keyring = Keyring(hash_key=hash_key, encryption_key=b"e" * 32, session_key=b"s" * 32, csrf_key=b"c" * 32)
    for token in ("", new_legacy_key(), new_pat(EXPIRY), "x" * 500):
        assert keyring.token_hash(token) == hmac.new(hash_key, token.encode(), hashlib.sha256).hexdigest()


def test_the_token_hash_uses_cpythons_own_sha256_and_falls_back_to_hashlibs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert crypto._plain_sha256() is not hashlib.sha256  # CPython ships one: 3.11 as _sha256, later as _sha2
    monkeypatch.setitem(sys.modules, "_sha2", None)  # None in sys.modules: the import raises ImportError
    monkeypatch.setitem(sys.modules, "_sha256", None)
    assert crypto._plain_sha256() is hashlib.sha256
    keyring = Keyring(hash_key=b"k" * 32, encryption_key=b"e" * 32, session_key=b"s" * 32, csrf_key=b"c" * 32)
    token = new_pat(EXPIRY)
    assert keyring.token_hash(token) == hmac.new(b"k" * 32, token.encode(), hashlib.sha256).hexdigest()


def test_encrypt_round_trip_with_fresh_nonces(keyring: Keyring) -> None:
    key = new_legacy_key()
    first, second = keyring.encrypt(key, b"auth_token:1"), keyring.encrypt(key, b"auth_token:1")
    assert first != second  # random nonce
    assert key.encode() not in first
    assert keyring.decrypt(first, b"auth_token:1") == key == keyring.decrypt(second, b"auth_token:1")


def test_tampering_is_detected(keyring: Keyring) -> None:
    blob = keyring.encrypt(new_legacy_key(), b"auth_token:1")
    for position in range(len(blob)):
        tampered = blob[:position] + bytes([blob[position] ^ 1]) + blob[position + 1 :]
        with pytest.raises(InvalidTag):
            keyring.decrypt(tampered, b"auth_token:1")
    with pytest.raises(InvalidTag):
        keyring.decrypt(blob, b"auth_token:2")  # moved to another user's row
    with pytest.raises(InvalidTag):
        Keyring.from_secret(b"another-secret").decrypt(blob, b"auth_token:1")
    with pytest.raises(InvalidTag):
        keyring.decrypt(blob[:-1], b"auth_token:1")  # truncated


def test_secret_from_setting_or_file(tmp_path: Path) -> None:
    assert load_secret("configured", str(tmp_path / "unused")) == b"configured"
    assert not (tmp_path / "unused").exists()
    path = tmp_path / "secret"
    created = load_secret("", str(path))
    assert len(created) == 128  # 64 random bytes, hex
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret("", str(path)) == created  # reused, not regenerated
