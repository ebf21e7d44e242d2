"""Token verification with a bounded, short-lived cache.

Credentials are verified as presented: the value of the ``Authorization`` header. A request that repeats, from the
same client address, a header admitted moments ago costs one keyed BLAKE2s, a dict lookup and a clock read
(:meth:`TokenVerifier.repeat`). Anything else takes :meth:`TokenVerifier.verify`: the header is parsed, malformed,
forged and expired PATs are refused offline, and a miss looks the token up by the HMAC by which tokens are stored.

A cache entry is trusted for ``CACHE_TTL_SECONDS``, so a revocation made by another worker or instance is honoured
within that time without any cluster machinery; revocations made by this worker drop their entries at once. Entries
hold no plaintext.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from service.auth_tokens.models import AuthToken
from service.crypto import MAX_TOKEN_CHARS, PAT_PREFIX, is_legacy_key, pat_expiry
from service.pats.models import PersonalAccessToken
from service.policy.facts import Binding, TokenLimits
from service.security.client_ip import IPAddress, IPNetwork, client_ip
from service.security.principal import CredentialKind, Principal
from service.security.rotation import adopt_previous_secret
from service.users.models import User

if TYPE_CHECKING:
    from service.runtime import Runtime

CACHE_TTL_SECONDS = 0.5
LEGACY_REFRESH_WITHOUT_LIFETIME_SECONDS = 600.0
_KEYWORDS = (b"token", b"bearer")
_ADDRESS_MEMO_SIZE = 1024
_ADDRESS_MEMO_KEY_BYTES = 128


def token_from_header(authorization: bytes) -> str | None:
    """The key in an ``Authorization`` header value, or None unless it is well-formed.

    Well-formed: ``Token <key>`` or ``Bearer <key>`` (keyword case-insensitive), with a single ASCII word of at most
    ``MAX_TOKEN_CHARS`` as the key.
    """
    parts = authorization.split()
    if (
        len(parts) != 2
        or parts[0].lower() not in _KEYWORDS
        or len(parts[1]) > MAX_TOKEN_CHARS
        or not parts[1].isascii()
    ):
        return None
    return parts[1].decode("ascii")


@dataclass(slots=True)
class CachedCredential:
    """What one successful lookup established; checked again (cheaply) on every request.

    Times are ``time.time()`` seconds: cheaper to take and compare than aware datetimes on every request. Entries
    are used only while ``loaded_at <= now``, so a clock stepped back makes them stale rather than longer-lived.
    """

    principal: Principal
    loaded_at: float
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
    # the last request admitted through this entry, and until when an identical one needs no checks (see ``repeat``)
    peer: str | None = None
    forwarded_for: bytes | None = None
    repeat_until: float = -math.inf

    @property
    def fresh_until(self) -> float:
        """When the entry must be looked up again."""
        return self.loaded_at + CACHE_TTL_SECONDS

    def stops_at(self) -> datetime | None:
        """When the credential stops working by itself if nothing else happens (None: never)."""
        return datetime.fromtimestamp(self.valid_until, UTC) if self.valid_until != math.inf else None

    def refresh_due(self) -> float:
        """When a use of this legacy token moves its sliding window (Waldur: after half the lifetime, or 10 min)."""
        return self.refreshed_at + (self.lifetime / 2 if self.lifetime else LEGACY_REFRESH_WITHOUT_LIFETIME_SECONDS)

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

    def admitted(self, peer: str | None, forwarded_for: bytes | None) -> None:
        """A request from ``peer`` (behind ``forwarded_for``) was admitted and its use recorded.

        Until the entry goes stale, the token expires or a legacy refresh falls due, the same request from there
        needs no checks.
        """
        self.peer, self.forwarded_for = peer, forwarded_for
        self.repeat_until = min(
            self.fresh_until, self.valid_until, math.inf if self.principal.is_pat else self.refresh_due()
        )


class TokenVerifier:
    """Turns a presented credential into a :class:`Principal`, or None for every kind of failure.

    The cache is keyed by a BLAKE2s of the header value under a random per-process key: half the cost of the stored
    HMAC-SHA256, which is computed only on a miss, and no plaintext or stored hash in the key. A token has at most
    one entry: presenting it in another form (``Bearer`` for ``Token``) replaces it.
    """

    def __init__(self, runtime: Runtime, max_entries: int) -> None:
        self.runtime = runtime
        self.max_entries = max_entries
        self._cache_hasher = hashlib.blake2s(key=secrets.token_bytes(32), digest_size=16)
        self._cache: OrderedDict[bytes, CachedCredential] = OrderedDict()
        self._cache_keys: dict[str, bytes] = {}  # stored token hash -> cache key, for forget_token
        self._forgets = 0  # bumped by every forget_*: see _load_token
        self._loading: dict[str, asyncio.Future[CachedCredential | None]] = {}
        self._addresses: dict[tuple[str | None, bytes | None], tuple[IPAddress | None, str | None]] = {}
        self.on_rotated_out_use: Callable[[PersonalAccessToken, str | None], Awaitable[None]] | None = None
        """Called (after the lookup, before the 401) when a PAT rotated out and past its grace is presented again."""

    def repeat(self, authorization: bytes, peer: str | None, forwarded_for: bytes | None) -> Principal | None:
        """The hot path: the principal, if this very header was admitted from the same client moments ago.

        Nothing that was checked then can differ: the token, the client address (hence the network ACL verdict),
        freshness, expiry and the legacy refresh schedule are the same. None means "not a repeat": call ``verify``.
        """
        hasher = self._cache_hasher.copy()
        hasher.update(authorization)
        entry = self._cache.get(hasher.digest())
        if entry is None or entry.peer != peer or entry.forwarded_for != forwarded_for:
            return None
        now = time.time()
        if not entry.loaded_at <= now < entry.repeat_until:
            return None
        principal = entry.principal
        if principal.is_pat and not self.runtime.usage.repeat(entry, now):
            return None
        return principal

    async def verify(self, authorization: bytes, peer: str | None, forwarded_for: bytes | None) -> Principal | None:
        """Authenticate an ``Authorization`` value sent by ``peer`` (with ``X-Forwarded-For``); record the use.

        Malformed, bad-checksum and expired PATs never reach the database.
        """
        token = token_from_header(authorization)
        if token is None:
            return None
        ip, ip_text = self._address(peer, forwarded_for)
        now = time.time()
        cache_key, entry = self._lookup(authorization, now)
        if entry is None:
            entry = await self._load_token(token, cache_key, now, ip_text)
            if entry is None:
                return None
        if not self._admits(entry, now, ip, record=True):
            return None
        self.runtime.usage.record(entry, now, ip_text)
        entry.admitted(peer, forwarded_for)
        return entry.principal

    async def inspect(self, token: str, ip: IPAddress | None) -> CachedCredential | None:
        """What ``verify`` would accept from ``ip``, without recording a use (introspection for resource servers)."""
        now = time.time()
        cache_key, entry = self._lookup(b"Token " + token.encode(), now)  # shares the entry of a client's header
        if entry is None:
            entry = await self._load_token(token, cache_key, now, str(ip) if ip is not None else None)
        return entry if entry is not None and self._admits(entry, now, ip, record=False) else None

    def _address(self, peer: str | None, forwarded_for: bytes | None) -> tuple[IPAddress | None, str | None]:
        """The client's address and its text, memoised.

        Parsing costs more than the rest of a cached verification, and a token used from several addresses in turn
        (CI runners, say) takes this path on every request.
        """
        key = (peer, forwarded_for)
        known = self._addresses.get(key)
        if known is not None:
            return known
        ip = client_ip(peer, forwarded_for.decode("latin-1") if forwarded_for else None, self.runtime.trusted_proxies)
        address = ip, str(ip) if ip is not None else None
        if forwarded_for is None or len(forwarded_for) <= _ADDRESS_MEMO_KEY_BYTES:  # long headers: not worth keeping
            if len(self._addresses) >= _ADDRESS_MEMO_SIZE:
                self._addresses.clear()
            self._addresses[key] = address
        return address

    def _lookup(self, presented: bytes, now: float) -> tuple[bytes, CachedCredential | None]:
        """The cache key of a presented credential, and its cached entry if still fresh."""
        hasher = self._cache_hasher.copy()
        hasher.update(presented)
        cache_key = hasher.digest()
        entry = self._cache.get(cache_key)
        return cache_key, entry if entry is not None and entry.loaded_at <= now < entry.fresh_until else None

    async def _load_token(
        self, token: str, cache_key: bytes, now: float, client: str | None
    ) -> CachedCredential | None:
        """Look ``token``, presented from ``client``, up in the database (after the offline checks); cache it."""
        kind = self._offline_kind(token, now)
        if kind is None:
            return None
        forgets = self._forgets
        entry = await self._load_once(kind, self.runtime.keyring.token_hash(token), now, client)
        if entry is None and await adopt_previous_secret(self.runtime, kind, token):  # a server-secret rotation
            entry = await self._load_once(kind, self.runtime.keyring.token_hash(token), now, client)
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
            self.runtime.usage.denied_from_ip(entry, now, str(ip) if ip is not None else None)
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

    async def _load_once(
        self, kind: CredentialKind, token_hash: str, now: float, client: str | None
    ) -> CachedCredential | None:
        """One database lookup per token at a time: concurrent misses for the same token share it."""
        pending = self._loading.get(token_hash)
        if pending is None:
            pending = asyncio.ensure_future(self._load(kind, token_hash, now, client))
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
        other_form = self._cache_keys.get(entry.token_hash)
        if other_form is not None and other_form != cache_key:
            self._drop(other_form)
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

    async def _load(
        self, kind: CredentialKind, token_hash: str, now: float, client: str | None
    ) -> CachedCredential | None:
        async with self.runtime.session() as session:
            if kind is CredentialKind.TOKEN:
                legacy = await session.scalar(
                    select(AuthToken).options(joinedload(AuthToken.user)).where(AuthToken.key_hash == token_hash)
                )
                return self._legacy_entry(legacy, token_hash) if legacy and legacy.user.is_active else None
            row = (
                await session.execute(
                    select(PersonalAccessToken, User)
                    .join(User, User.id == PersonalAccessToken.user_id)
                    .where(PersonalAccessToken.token_hash == token_hash)
                )
            ).first()
        if row is None:
            return None
        pat, owner = row
        if not owner.is_active or not owner.can_use_personal_access_tokens:
            return None
        if not pat.is_active and (pat.grace_until is None or now >= pat.grace_until.timestamp()):
            if pat.rotated_at is not None and self.on_rotated_out_use is not None:
                await self.on_rotated_out_use(pat, client)
            return None
        return self._pat_entry(pat, owner, token_hash)

    def _legacy_entry(self, token: AuthToken, token_hash: str) -> CachedCredential:
        user = token.user
        refreshed_at = token.refreshed_at.timestamp()
        lifetime = float(user.token_lifetime) if user.token_lifetime else None
        return CachedCredential(
            principal=_principal(user, CredentialKind.TOKEN, token.id, None),
            loaded_at=time.time(),
            token_hash=token_hash,
            valid_until=refreshed_at + lifetime if lifetime is not None else math.inf,
            lifetime=lifetime,
            refreshed_at=refreshed_at,
        )

    def _pat_entry(self, pat: PersonalAccessToken, owner: User, token_hash: str) -> CachedCredential:
        limits = TokenLimits(
            scopes=frozenset(pat.scopes),
            bindings=frozenset(
                Binding(binding.get("type", ""), binding["uuid"], bool(binding.get("deleted")))
                for binding in pat.allowed_scopes
                if binding.get("uuid")
            ),
        )
        return CachedCredential(
            principal=_principal(owner, CredentialKind.PAT, pat.id, limits),
            loaded_at=time.time(),
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
