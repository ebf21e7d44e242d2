"""Token formats, keyed hashing and encryption: every constant that shapes a token lives here.

Personal Access Tokens keep Waldur's shape ``w_<expiry unix>_<random><checksum>``; legacy keys are
``tgl_<random><checksum>``. The random part is 256 bits in base62; the checksum is CRC-32 of everything before
it, in base62, so a scanner (or this service, before touching the database) can reject a mistyped or forged
token offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import os
import re
import secrets
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_BYTES = 32
RANDOM_CHARS = 43  # ceil(256 / log2(62))
CHECKSUM_CHARS = 6  # ceil(32 / log2(62))
PAT_PREFIX = "w_"
LEGACY_PREFIX = "tgl_"
PAT_DISPLAY_RANDOM_CHARS = 8  # token_prefix runs this far into the random part, so a user's tokens differ
PAT_DISPLAY_MAX_CHARS = 32  # "w_" + a 12-digit expiry + "_" + the random characters, with room to spare
LEGACY_DISPLAY_CHARS = 12  # "tgl_" + 8 random characters
HASH_HEX_CHARS = 64
MAX_TOKEN_CHARS = 128
_NONCE_BYTES = 12


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(BASE62[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_CHARS)


def _random_part() -> str:
    return _base62(int.from_bytes(secrets.token_bytes(RANDOM_BYTES), "big"), RANDOM_CHARS)


def _has_valid_checksum(token: str, random_start: int) -> bool:
    random_part = token[random_start:]
    if len(random_part) != RANDOM_CHARS + CHECKSUM_CHARS or any(c not in BASE62 for c in random_part):
        return False
    body, checksum = token[:-CHECKSUM_CHARS], token[-CHECKSUM_CHARS:]
    return hmac.compare_digest(_checksum(body), checksum)


def new_pat(expires_at_unix: int) -> str:
    """A fresh PAT for a token that expires at ``expires_at_unix``."""
    body = f"{PAT_PREFIX}{expires_at_unix}_{_random_part()}"
    return body + _checksum(body)


def new_legacy_key() -> str:
    """A fresh legacy API key."""
    body = f"{LEGACY_PREFIX}{_random_part()}"
    return body + _checksum(body)


def pat_expiry(token: str) -> int | None:
    """The expiry embedded in a well-formed PAT (unix seconds), or None when the token is malformed."""
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(PAT_PREFIX):
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or not parts[1].isascii() or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    if not _has_valid_checksum(token, len(parts[0]) + len(parts[1]) + 2):
        return None
    return int(parts[1])


def is_legacy_key(token: str) -> bool:
    """Whether ``token`` has the legacy-key shape and a valid checksum."""
    return (
        len(token) == len(LEGACY_PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS
        and token.startswith(LEGACY_PREFIX)
        and _has_valid_checksum(token, len(LEGACY_PREFIX))
    )


def is_token(candidate: str) -> bool:
    """Whether ``candidate`` is shaped like a tokengate token (PAT or legacy key) with a valid checksum."""
    return pat_expiry(candidate) is not None or is_legacy_key(candidate)


_TAIL = f"[0-9A-Za-z]{{{RANDOM_CHARS + CHECKSUM_CHARS}}}"
_CANDIDATE = re.compile(
    f"(?<![0-9A-Za-z_])(?:{re.escape(PAT_PREFIX)}[0-9]{{1,12}}_|{re.escape(LEGACY_PREFIX)}){_TAIL}(?![0-9A-Za-z_])"
)


def find_tokens(text: str) -> Iterator[re.Match[str]]:
    """Every tokengate token in ``text`` (prefix, shape and checksum; look-alikes are skipped), as regex matches."""
    for match in _CANDIDATE.finditer(text):
        if is_token(match.group()):
            yield match


def display_prefix(token: str) -> str:
    """The non-secret prefix shown in listings.

    A PAT's runs past its expiry into the random part (``w_1767225600_Ab3dE7gH``): Waldur's first 8 characters
    are the same for every token a user makes on one day. 8 of the 43 random characters leave over 200 bits unseen.
    """
    if not token.startswith(PAT_PREFIX):
        return token[:LEGACY_DISPLAY_CHARS]
    expiry_end = token.find("_", len(PAT_PREFIX))
    if expiry_end < 0:
        return token[: len(PAT_PREFIX)]
    return token[: min(expiry_end + 1 + PAT_DISPLAY_RANDOM_CHARS, PAT_DISPLAY_MAX_CHARS)]


_SHA256_BLOCK = 64


def _plain_sha256() -> Any:
    """CPython's own SHA-256 constructor (``_sha2``, ``_sha256`` before 3.12), else hashlib's (OpenSSL).

    The same digests. The token's HMAC runs on every authenticated request, among enough framework code to leave
    the CPU's caches cold, and there OpenSSL's state copy costs nearly twice as much (docs/decisions.md, 2).
    """
    for module in ("_sha2", "_sha256"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(module).sha256
    return hashlib.sha256


@dataclass(frozen=True, slots=True)
class Keyring:
    """Keys derived from the server secret: token lookup hashes, legacy-key encryption, page sessions, CSRF.

    ``previous`` holds the keyrings of earlier secrets during a rotation: tokens hashed and keys encrypted under
    them are still recognised (``previous_hashes``, ``decrypt``) and moved to the current secret when used. Page
    sessions and CSRF tokens use the current secret only (a rotation signs people out of the pages).
    """

    hash_key: bytes
    encryption_key: bytes
    session_key: bytes
    csrf_key: bytes
    previous: tuple[Keyring, ...] = ()
    _inner: Any = field(init=False, repr=False, compare=False)
    _outer: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # HMAC (RFC 2104) from SHA-256 states that have absorbed the padded key once: each request copies the two
        # states, where copying a keyed ``hmac.HMAC`` costs twice as much (its Python wrapper); it runs on every
        # authenticated request (see ``_plain_sha256``). ``test_crypto`` checks the digests against ``hmac.new``.
        key = self.hash_key if len(self.hash_key) <= _SHA256_BLOCK else hashlib.sha256(self.hash_key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        sha256 = _plain_sha256()
        object.__setattr__(self, "_inner", sha256(bytes(b ^ 0x36 for b in key)))
        object.__setattr__(self, "_outer", sha256(bytes(b ^ 0x5C for b in key)))

    @classmethod
    def from_secret(cls, secret: bytes, previous: tuple[bytes, ...] = ()) -> Keyring:
        """Derive independent keys with HKDF-SHA256 (for ``secret`` and each earlier one in ``previous``)."""

        def derive(purpose: bytes, source: bytes) -> bytes:
            return HKDF(algorithm=SHA256(), length=32, salt=b"tokengate", info=purpose).derive(source)

        return cls(
            hash_key=derive(b"token-hash-v1", secret),
            encryption_key=derive(b"legacy-key-encryption-v1", secret),
            session_key=derive(b"page-session-v1", secret),
            csrf_key=derive(b"page-csrf-v1", secret),
            previous=tuple(cls.from_secret(old) for old in previous if old != secret),
        )

    def previous_hashes(self, token: str) -> list[str]:
        """The token's hashes under the earlier secrets (empty outside a rotation)."""
        return [keyring.token_hash(token) for keyring in self.previous]

    def lookup_hashes(self, token: str) -> list[str]:
        """The token's hash under the current secret, then under each earlier one."""
        return [self.token_hash(token), *self.previous_hashes(token)]

    def token_hash(self, token: str) -> str:
        """HMAC-SHA256 of the token, hex: the only form in which a token is looked up."""
        return self.token_digest(token.encode()).hex()

    def token_digest(self, token: bytes) -> bytes:
        """HMAC-SHA256 of the token's bytes (``token_hash`` before hex encoding)."""
        inner = self._inner.copy()
        inner.update(token)
        outer = self._outer.copy()
        outer.update(inner.digest())
        raw: bytes = outer.digest()
        return raw

    def encrypt(self, plaintext: str, context: bytes) -> bytes:
        """AES-256-GCM with a random nonce; ``context`` is bound as associated data."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + AESGCM(self.encryption_key).encrypt(nonce, plaintext.encode(), context)

    def decrypt(self, blob: bytes, context: bytes) -> str:
        """Inverse of :meth:`encrypt` (under this secret or an earlier one).

        Raises:
            cryptography.exceptions.InvalidTag: tampered with, or encrypted under a secret no longer known.
        """
        try:
            return AESGCM(self.encryption_key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], context).decode()
        except InvalidTag:
            for keyring in self.previous:
                with contextlib.suppress(InvalidTag):
                    return keyring.decrypt(blob, context)
            raise


def legacy_key_context(user_id: int) -> bytes:
    """Associated data binding an encrypted legacy key to its owner's row."""
    return f"auth_token:{user_id}".encode()


def load_secret(secret: str, secret_file: str) -> bytes:
    """The configured secret, or the one in ``secret_file`` (created with 64 random bytes, mode 0600, if absent)."""
    if secret:
        return secret.encode()
    path = Path(secret_file)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(64))
    return path.read_text().strip().encode()
