"""Token verification with a bounded, short-lived cache.

The hot path costs one keyed BLAKE2s and a dict lookup; a miss adds a shape/checksum check and the HMAC by which
tokens are stored. A cache entry is trusted for ``CACHE_TTL_SECONDS``, so a revocation made by another worker or
instance is honoured within that time without any cluster machinery; revocations made by this worker drop their
entries at once. Entries hold no plaintext.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from service.auth_tokens.models import AuthToken
from service.crypto import MAX_TOKEN_CHARS, PAT_PREFIX, is_legacy_key, pat_expiry
from service.pats.models import PersonalAccessToken
from service.policy.facts import TokenLimits
from service.security.client_ip import IPAddress, IPNetwork
from service.security.principal import CredentialKind, Principal
from service.users.models import User

if TYPE_CHECKING:
    from service.runtime import Runtime

CACHE_TTL_SECONDS = 0.5


@dataclass(slots=True)
class CachedCredential:
    """What one successful lookup established; checked again (cheaply) on every request.

    Times here are plain ``time.time()`` seconds: on the request path they are cheaper to take and compare than
    aware datetimes.
    """

    principal: Principal
    fresh_until: float
    """``time.monotonic()`` after which the entry is looked up again."""
    token_hash: str
    valid_until: float = math.inf
    """When the credential stops working by itself: a PAT's expiry, a legacy token's idle timeout."""
    # legacy tokens: sliding idle timeout
    lifetime: float | None = None
    refreshed_at: float = 0.0
    # PATs
    networks: tuple[IPNetwork, ...] = ()
    last_used_ip: str | None = None
    pat_uuid: str = ""
    pat_name: str = ""

    def stops_at(self) -> datetime | None:
        """When the credential stops working by itself if nothing else happens (None: never)."""
        return datetime.fromtimestamp(self.valid_until, UTC) if self.valid_until != math.inf else None

    def slide(self, now: float) -> None:
        """A legacy token was used at ``now``: its idle timeout restarts."""
        self.refreshed_at = now
        if self.lifetime is not None:
            self.valid_until = now + self.lifetime

    def is_valid(self, now: float, ip: IPAddress | None) -> bool:
        """Expiry, idle timeout and network ACL, evaluated for this request."""
        if now >= self.valid_until:
            return False
        return not self.networks or (ip is not None and any(ip in network for network in self.networks))


class TokenVerifier:
    """Turns a presented token into a :class:`Principal`, or None for every kind of failure.

    The cache is keyed by a BLAKE2s of the token under a random per-process key: half the cost of the stored
    HMAC-SHA256, which is computed only on a miss, and no plaintext or stored hash in the key.
    """

    def __init__(self, runtime: Runtime, max_entries: int) -> None:
        self.runtime = runtime
        self.max_entries = max_entries
        self._cache_hasher = hashlib.blake2s(key=secrets.token_bytes(32), digest_size=16)
        self._cache: OrderedDict[bytes, CachedCredential] = OrderedDict()
        self._cache_keys: dict[str, bytes] = {}  # stored token hash -> cache key, for forget_token
        self._forgets = 0  # bumped by every forget_*: see _load_token
        self._loading: dict[str, asyncio.Future[CachedCredential | None]] = {}

    async def verify(self, token: str, ip: IPAddress | None) -> Principal | None:
        """Authenticate ``token`` from ``ip`` and record the use.

        A cached token costs one BLAKE2s and a dict lookup; malformed, bad-checksum and expired PATs never reach the
        database.
        """
        now = time.time()
        cache_key, entry = self._lookup(token)
        if entry is None:
            entry = await self._load_token(token, cache_key, now)
            if entry is None:
                return None
        if not self._admits(entry, now, ip, record=True):
            return None
        self.runtime.usage.record(entry, now, ip)
        return entry.principal

    async def inspect(self, token: str, ip: IPAddress | None) -> CachedCredential | None:
        """What ``verify`` would accept, without recording a use (introspection for resource servers)."""
        now = time.time()
        cache_key, entry = self._lookup(token)
        if entry is None:
            entry = await self._load_token(token, cache_key, now)
        return entry if entry is not None and self._admits(entry, now, ip, record=False) else None

    def _lookup(self, token: str) -> tuple[bytes, CachedCredential | None]:
        """The token's cache key, and its cached credential if still fresh (the hot path: no await)."""
        if len(token) > MAX_TOKEN_CHARS:  # rejected offline: not worth hashing
            return b"", None
        hasher = self._cache_hasher.copy()
        hasher.update(token.encode())
        cache_key = hasher.digest()
        entry = self._cache.get(cache_key)
        return cache_key, entry if entry is not None and time.monotonic() <= entry.fresh_until else None

    async def _load_token(self, token: str, cache_key: bytes, now: float) -> CachedCredential | None:
        """Look ``token`` up in the database (after the offline checks) and cache what is found."""
        kind = self._offline_kind(token, now)
        if kind is None:
            return None
        forgets = self._forgets
        entry = await self._load_once(kind, self.runtime.keyring.token_hash(token), now)
        if entry is None:
            self._drop(cache_key)
        elif forgets == self._forgets:  # a lookup that overlapped a revocation may hold the old row: not cached
            self._remember(cache_key, entry)
        return entry

    def _admits(self, entry: CachedCredential, now: float, ip: IPAddress | None, *, record: bool) -> bool:
        """Whether the credential works now, from ``ip``; a refusal by a PAT's network ACL is recorded if asked."""
        if entry.principal.is_pat and not self.runtime.settings.tokens.pat_enabled:
            return False
        if entry.is_valid(now, ip):
            return True
        if record and entry.networks and entry.principal.is_pat:
            self.runtime.usage.denied_from_ip(entry, ip)
        return False

    def _offline_kind(self, token: str, now: float) -> CredentialKind | None:
        """What ``token`` claims to be, judged without the database: None for malformed, forged or expired."""
        if len(token) > MAX_TOKEN_CHARS:
            return None
        if token.startswith(PAT_PREFIX):
            expiry = pat_expiry(token)
            if expiry is None or expiry <= now or not self.runtime.settings.tokens.pat_enabled:
                return None
            return CredentialKind.PAT
        return CredentialKind.TOKEN if is_legacy_key(token) else None

    async def _load_once(self, kind: CredentialKind, token_hash: str, now: float) -> CachedCredential | None:
        """One database lookup per token at a time: concurrent misses for the same token share it."""
        pending = self._loading.get(token_hash)
        if pending is None:
            pending = asyncio.ensure_future(self._load(kind, token_hash, now))
            self._loading[token_hash] = pending
            pending.add_done_callback(lambda _: self._loading.pop(token_hash, None))
        return await asyncio.shield(pending)

    def forget_user(self, user_id: int) -> None:
        """Drop every cached credential of ``user_id`` (after a change to the user or their tokens)."""
        self._forgets += 1
        for key in [key for key, entry in self._cache.items() if entry.principal.user_id == user_id]:
            self._drop(key)

    def forget_token(self, token_hash: str) -> None:
        """Drop one cached credential (after revocation, rotation or an ACL change)."""
        self._forgets += 1
        cache_key = self._cache_keys.get(token_hash)
        if cache_key is not None:
            self._drop(cache_key)

    def _remember(self, cache_key: bytes, entry: CachedCredential) -> None:
        previous = self._drop(cache_key)
        if previous is not None and previous.principal == entry.principal:
            # keep the object a reload found unchanged: decision memo keys then match by identity
            entry.principal = previous.principal
        self._cache[cache_key] = entry
        self._cache_keys[entry.token_hash] = cache_key
        while len(self._cache) > self.max_entries:
            _, evicted = self._cache.popitem(last=False)
            del self._cache_keys[evicted.token_hash]

    def _drop(self, cache_key: bytes) -> CachedCredential | None:
        entry = self._cache.pop(cache_key, None)
        if entry is not None:
            del self._cache_keys[entry.token_hash]
        return entry

    async def _load(self, kind: CredentialKind, token_hash: str, now: float) -> CachedCredential | None:
        async with self.runtime.session() as session:
            if kind is CredentialKind.TOKEN:
                legacy = await session.scalar(
                    select(AuthToken).options(joinedload(AuthToken.user)).where(AuthToken.key_hash == token_hash)
                )
                return self._legacy_entry(legacy, token_hash) if legacy and legacy.user.is_active else None
            row = (await session.execute(
                select(PersonalAccessToken, User)
                .join(User, User.id == PersonalAccessToken.user_id)
                .where(PersonalAccessToken.token_hash == token_hash)
            )).first()
        if row is None:
            return None
        pat, owner = row
        if not owner.is_active or not owner.can_use_personal_access_tokens:
            return None
        if not pat.is_active and (pat.grace_until is None or now >= pat.grace_until.timestamp()):
            return None
        return self._pat_entry(pat, owner, token_hash)

    def _legacy_entry(self, token: AuthToken, token_hash: str) -> CachedCredential:
        user = token.user
        refreshed_at = token.refreshed_at.timestamp()
        lifetime = float(user.token_lifetime) if user.token_lifetime else None
        return CachedCredential(
            principal=_principal(user, CredentialKind.TOKEN, token.id, None),
            fresh_until=time.monotonic() + CACHE_TTL_SECONDS,
            token_hash=token_hash,
            valid_until=refreshed_at + lifetime if lifetime is not None else math.inf,
            lifetime=lifetime,
            refreshed_at=refreshed_at,
        )

    def _pat_entry(self, pat: PersonalAccessToken, owner: User, token_hash: str) -> CachedCredential:
        limits = TokenLimits(
            scopes=frozenset(pat.scopes),
            bindings=frozenset(binding["uuid"] for binding in pat.allowed_scopes if binding.get("uuid")),
        )
        return CachedCredential(
            principal=_principal(owner, CredentialKind.PAT, pat.id, limits),
            fresh_until=time.monotonic() + CACHE_TTL_SECONDS,
            token_hash=token_hash,
            valid_until=min(pat.expires_at, pat.grace_until or pat.expires_at).timestamp(),
            networks=_networks(pat.allowed_networks),
            last_used_ip=pat.last_used_ip,
            pat_uuid=pat.uuid.hex,
            pat_name=pat.name,
        )


def _principal(user: User, kind: CredentialKind, credential_id: int, limits: TokenLimits | None) -> Principal:
    return Principal(
        user_id=user.id,
        user_uuid=user.uuid,
        username=user.username,
        is_staff=user.is_staff,
        kind=kind,
        credential_id=credential_id,
        limits=limits,
    )


def _networks(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry) for entry in entries)
