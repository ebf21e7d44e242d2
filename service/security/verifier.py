"""Token verification with a bounded cache whose entries live as long as nothing changes.

Credentials are verified as presented: the value of the ``Authorization`` header. A request that repeats, from the
same client address, a token admitted before costs a split of the header, the token's HMAC, a dict lookup and a
clock read (:meth:`TokenVerifier.repeat`). Anything else takes :meth:`TokenVerifier.verify`: the header is checked,
malformed, forged and expired PATs are refused offline, and a miss looks the token up by that HMAC, by which tokens
are stored (:func:`service.security.credentials.find_credential`, the one lookup of the miss path).

Cached entries have no lifetime of their own. They are dropped when what they were built from changes: at once in
the worker that made the change, within milliseconds in the others when PostgreSQL carries the notification
(``service.broadcast``), and otherwise at the next poll of the users and tokens changed since the last look
(``service.security.sync``). Each successful poll confirms the whole cache for twice ``sync_interval_seconds``: if
polls stop (the database away, the event loop starved), entries stop being trusted rather than outliving a change.
Entries hold no plaintext.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from service.auth_tokens.models import AuthToken
from service.bounded import FifoMap
from service.config import TokenSettings
from service.crypto import MAX_TOKEN_CHARS, PAT_PREFIX, Keyring, is_legacy_key, pat_expiry
from service.db import reader
from service.pats.models import PersonalAccessToken
from service.policy.facts import Binding, TokenLimits
from service.security.client_ip import IPAddress, IPNetwork, acl_network, client_ip
from service.security.credentials import find_credential
from service.security.principal import CredentialKind, Principal

LEGACY_REFRESH_WITHOUT_LIFETIME_SECONDS = 600.0
REFUSED_TTL_SECONDS = 60.0
"""How long a refused token is refused from memory at most: a change to a user or to the token forgets it sooner.

A refusal cannot turn into an admission without such a change (tokens are random: an unknown one is never issued
later), so this only bounds what a missed notification could leave; long enough that a flood replaying thousands
of unknown tokens stays out of the database."""
_KEY_BYTES = 16
_T = TypeVar("_T")
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
    """What one successful lookup established about a PAT; checked again (cheaply) on every request.

    Times are ``time.time()`` seconds: cheaper to take and compare than aware datetimes on every request. The
    principal is shared by every cached token of the same owner with the same limits (see ``TokenVerifier``).
    """

    principal: Principal
    credential_id: int
    valid_until: float = math.inf
    """When the credential stops working by itself: a PAT's expiry, a legacy token's idle timeout."""
    networks: tuple[IPNetwork, ...] = ()
    last_used_ip: str | None = None
    # the last request admitted through this entry, and until when an identical one needs no checks (see ``repeat``)
    peer: str | None = None
    forwarded_for: bytes | None = None
    repeat_until: float = -math.inf
    owner_epoch: int = 0
    """The owner's epoch when the entry was made: a change to the owner (``forget_user``) starts a new one."""

    def stops_at(self) -> datetime | None:
        """When the credential stops working by itself if nothing else happens (None: never)."""
        return datetime.fromtimestamp(self.valid_until, UTC) if self.valid_until != math.inf else None

    def is_valid(self, now: float, ip: IPAddress | None) -> bool:
        """Expiry, idle timeout and network ACL, evaluated for this request."""
        if now >= self.valid_until:
            return False
        return not self.networks or (ip is not None and any(ip in network for network in self.networks))

    def admitted(self, peer: str | None, forwarded_for: bytes | None) -> None:
        """A request from ``peer`` (behind ``forwarded_for``) was admitted and its use recorded.

        Until the token expires (or a legacy refresh falls due), the same request from there needs no checks.
        """
        self.peer, self.forwarded_for = peer, forwarded_for
        self.repeat_until = self.valid_until


@dataclass(slots=True)
class LegacyCredential(CachedCredential):
    """A cached legacy token: its idle timeout slides with use."""

    lifetime: float | None = None
    refreshed_at: float = 0.0

    def refresh_due(self) -> float:
        """When a use of this legacy token moves its sliding window (Waldur: after half the lifetime, or 10 min)."""
        return self.refreshed_at + (self.lifetime / 2 if self.lifetime else LEGACY_REFRESH_WITHOUT_LIFETIME_SECONDS)

    def slide(self, now: float) -> None:
        """A legacy token was used at ``now``: its idle timeout restarts."""
        self.refreshed_at = now
        if self.lifetime is not None:
            self.valid_until = now + self.lifetime

    def admitted(self, peer: str | None, forwarded_for: bytes | None) -> None:
        """As for a PAT, until the next refresh falls due."""
        self.peer, self.forwarded_for = peer, forwarded_for
        self.repeat_until = min(self.valid_until, self.refresh_due())


class UsageLog(Protocol):
    """Where the verifier notes what it admits and refuses (:class:`service.security.usage.UsageRecorder`)."""

    def record(self, entry: CachedCredential, now: float, ip_text: str | None) -> None:
        """One admitted use of ``entry`` at ``now`` from ``ip_text``."""

    def record_again(self, entry: CachedCredential, now: float) -> bool:
        """One more use like the last one recorded through ``entry``; False when it must go through ``record``."""

    def denied_from_ip(self, entry: CachedCredential, now: float, ip_text: str | None) -> None:
        """A request refused by the PAT's network ACL."""


AdoptPreviousSecret = Callable[[CredentialKind, str], Awaitable[bool]]
"""Moves a token stored under an earlier server secret to the current one; whether there was such a token."""


class TokenVerifier:
    """Turns a presented credential into its :class:`CachedCredential`, or None for every kind of failure.

    The credential names who (``principal``) and which token (``credential_id``).

    The cache is keyed by the first 16 bytes of the token's stored HMAC-SHA256: a token presented as ``Token`` or
    ``Bearer`` has one entry, and a change announced by token hash finds it without an index beside the cache. It
    holds at most ``verification_cache_size`` credentials and forgets the oldest first (:class:`FifoMap`). Refused
    tokens (unknown, revoked, of an inactive owner) are remembered apart, at most ``refused_token_cache_size`` for
    up to ``REFUSED_TTL_SECONDS``, so a flood of them costs no database round trip per request and pushes no real
    token out. Owners and limits are shared between entries (``_shared``): an entry is about 270 bytes
    (``python -m bench``).
    """

    def __init__(
        self,
        tokens: TokenSettings,
        keyring: Keyring,
        trusted_proxies: tuple[IPNetwork, ...],
        engine: AsyncEngine,
        usage: UsageLog,
        adopt_previous_secret: AdoptPreviousSecret,
    ) -> None:
        self._tokens = tokens
        self._keyring = keyring
        self._trusted_proxies = trusted_proxies
        self._reader = reader(engine)
        self._usage = usage
        self._adopt_previous_secret = adopt_previous_secret
        self._cache: FifoMap[bytes, CachedCredential] = FifoMap(tokens.verification_cache_size)
        self._refused: FifoMap[bytes, float] = FifoMap(tokens.refused_token_cache_size)  # key -> refused until
        self._shared: dict[object, object] = {}
        self._owner_epochs: dict[int, int] = {}  # user id -> epoch, bumped by forget_user; absent: 0
        self._forgets = 0  # bumped by every forget_*: see _load_token
        self._loading: dict[tuple[str, int], asyncio.Future[CachedCredential | None]] = {}
        self._addresses: dict[tuple[str | None, bytes | None], tuple[IPAddress | None, str | None]] = {}
        # the cache is trusted while fresh_from <= now < fresh_until (see ``confirm``): untrusted until the first poll
        self._fresh_from = math.inf
        self._fresh_until = -math.inf
        self.on_rotated_out_use: Callable[[int, str | None], Awaitable[None]] | None = None
        """Called with the PAT's id and the client's address (after the lookup, before the 401) when a PAT rotated
        out and past its grace is presented again."""

    def confirm(self, started: float, trusted_for: float) -> None:
        """Every change committed before ``started`` has been applied: trust the cache for ``trusted_for`` from then.

        A clock stepped back before ``started`` makes the cache untrusted until the next confirmation.
        """
        self._fresh_from, self._fresh_until = started, started + trusted_for

    def _key(self, token: bytes) -> bytes:
        return self._keyring.token_digest(token)[:_KEY_BYTES]

    def repeat(self, authorization: bytes, peer: str | None, forwarded_for: bytes | None) -> CachedCredential | None:
        """The hot path: the credential, if this token was admitted from the same client before.

        Nothing that was checked then can differ: the token, the client address (hence the network ACL verdict),
        expiry and the legacy refresh schedule are the same. None means "not a repeat": call ``verify``.
        """
        parts = authorization.split()
        if len(parts) != 2 or parts[0].lower() not in _KEYWORDS:
            return None
        entry = self._cache.items.get(self._key(parts[1]))
        if entry is None or entry.peer != peer or entry.forwarded_for != forwarded_for or not self._current(entry):
            return None
        now = time.time()
        if not self._fresh_from <= now < self._fresh_until or now >= entry.repeat_until:
            return None
        if entry.principal.is_pat and not self._usage.record_again(entry, now):
            return None
        return entry

    async def verify(
        self, authorization: bytes, peer: str | None, forwarded_for: bytes | None
    ) -> CachedCredential | None:
        """Authenticate an ``Authorization`` value sent by ``peer`` (with ``X-Forwarded-For``); record the use.

        Malformed, bad-checksum and expired PATs never reach the database.
        """
        token = token_from_header(authorization)
        if token is None:
            return None
        ip, ip_text = self._address(peer, forwarded_for)
        now = time.time()
        entry = await self._credential(token, now, ip_text)
        if entry is None or not self._admits(entry, now, ip, record=True):
            return None
        self._usage.record(entry, now, ip_text)
        entry.admitted(peer, forwarded_for)
        return entry

    async def inspect(self, token: str, ip: IPAddress | None) -> CachedCredential | None:
        """What ``verify`` would accept from ``ip``, without recording a use (introspection for resource servers)."""
        now = time.time()
        entry = await self._credential(token, now, str(ip) if ip is not None else None)
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
        ip = client_ip(peer, forwarded_for.decode("latin-1") if forwarded_for else None, self._trusted_proxies)
        address = ip, str(ip) if ip is not None else None
        if forwarded_for is None or len(forwarded_for) <= _ADDRESS_MEMO_KEY_BYTES:  # long headers: not worth keeping
            if len(self._addresses) >= _ADDRESS_MEMO_SIZE:
                self._addresses.clear()
            self._addresses[key] = address
        return address

    async def _credential(self, token: str, now: float, client: str | None) -> CachedCredential | None:
        """The cached credential of ``token``, else the one looked up in the database (after the offline checks).

        ``client`` is the address it was presented from.
        """
        key = self._key(token.encode())
        if self._fresh_from <= now < self._fresh_until:
            entry = self._cache.items.get(key)
            if entry is not None and self._current(entry):
                return entry
            refused_until = self._refused.items.get(key)
            if refused_until is not None and now < refused_until:
                return None
        kind = self._offline_kind(token, now)
        if kind is None:
            return None
        forgets = self._forgets
        entry = await self._load_once(kind, self._keyring.token_hash(token), now, client)
        if entry is None and await self._adopt_previous_secret(kind, token):  # a server-secret rotation
            entry = await self._load_once(kind, self._keyring.token_hash(token), now, client)
        if forgets != self._forgets:  # a lookup that overlapped a change may hold the old row: not remembered
            return entry
        if entry is None:
            self._cache.pop(key)
            self._refused.put(key, now + REFUSED_TTL_SECONDS)
        else:
            self._refused.pop(key)
            entry.owner_epoch = self._owner_epochs.get(entry.principal.user_id, 0)
            self._cache.put(key, entry)
        return entry

    def _current(self, entry: CachedCredential) -> bool:
        """Whether nothing about the entry's owner changed since it was made."""
        return entry.owner_epoch == self._owner_epochs.get(entry.principal.user_id, 0)

    def _admits(self, entry: CachedCredential, now: float, ip: IPAddress | None, *, record: bool) -> bool:
        """Whether the credential works now, from ``ip``; a refusal by a PAT's network ACL is recorded if asked."""
        if entry.principal.is_pat and not self._tokens.pat_enabled:
            return False
        if entry.is_valid(now, ip):
            return True
        if record and entry.networks and entry.principal.is_pat:
            self._usage.denied_from_ip(entry, now, str(ip) if ip is not None else None)
        return False

    def _offline_kind(self, token: str, now: float) -> CredentialKind | None:
        """What ``token`` claims to be, judged without the database: None for malformed, forged or expired."""
        if len(token) > MAX_TOKEN_CHARS:
            return None
        if token.startswith(PAT_PREFIX):
            expiry = pat_expiry(token)
            if expiry is None or expiry <= now or not self._tokens.pat_enabled:
                return None
            return CredentialKind.PAT
        return CredentialKind.TOKEN if is_legacy_key(token) else None

    async def _load_once(
        self, kind: CredentialKind, token_hash: str, now: float, client: str | None
    ) -> CachedCredential | None:
        """One database lookup per token at a time: concurrent misses for the same token share it.

        Only misses between the same two changes share one: a lookup started before a ``forget_*`` may have read
        the old row, and a miss after the change must not take (and cache) that answer as current.
        """
        key = (token_hash, self._forgets)
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(kind, token_hash, now, client))
            self._loading[key] = pending
            pending.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(pending)

    def forget_user(self, user_id: int) -> None:
        """Drop every cached credential of ``user_id`` (after a change to the user or their tokens).

        In constant time: the owner's epoch moves on, and entries of an earlier epoch count as absent (they are
        replaced on the next lookup, or leave in turn). Every sign-in changes its user, in every worker: a scan of
        a full cache would cost milliseconds each time.
        """
        self._forgets += 1
        self._owner_epochs[user_id] = self._owner_epochs.get(user_id, 0) + 1
        self._refused.clear()  # refused because of the owner (inactive, say): not any more, perhaps

    def forget_token(self, token_hash: str) -> None:
        """Drop one cached credential (after revocation, rotation or an ACL change)."""
        self._forgets += 1
        key = bytes.fromhex(token_hash[: 2 * _KEY_BYTES])
        self._cache.pop(key)
        self._refused.pop(key)

    def _share(self, value: _T) -> _T:
        """An equal value already held by the cache, else ``value`` (kept for the next one)."""
        shared = self._shared.setdefault(value, value)
        if len(self._shared) > 2 * self._cache.size:  # a memo of equal values: forgetting it costs only sharing
            self._shared.clear()
        return shared  # type: ignore[return-value]

    async def _load(
        self, kind: CredentialKind, token_hash: str, now: float, client: str | None
    ) -> CachedCredential | None:
        """The credential stored under ``token_hash``, if it may be used at ``now``: the miss path's one lookup."""
        row = await find_credential(self._reader, kind, token_hash, datetime.fromtimestamp(now, UTC))
        if row is None:
            return None
        if not row.usable:
            if kind is CredentialKind.PAT and row.retired and self.on_rotated_out_use is not None:
                self._forgets += 1  # not remembered as refused: every replay must reach reuse detection
                await self.on_rotated_out_use(row.id, client)
            return None
        return self._legacy_entry(row) if kind is CredentialKind.TOKEN else self._pat_entry(row)

    def _legacy_entry(self, row: Row[Any]) -> LegacyCredential:
        lifetime = float(row.token_lifetime) if row.token_lifetime else None
        expires_at = AuthToken.expiry_after(row.refreshed_at, lifetime)
        return LegacyCredential(
            principal=self._principal(row, CredentialKind.TOKEN, None),
            credential_id=row.id,
            valid_until=expires_at.timestamp() if expires_at is not None else math.inf,
            lifetime=lifetime,
            refreshed_at=row.refreshed_at.timestamp(),
        )

    def _pat_entry(self, row: Row[Any]) -> CachedCredential:
        share = self._share
        limits = TokenLimits(
            scopes=share(frozenset(row.scopes)),
            bindings=share(
                frozenset(
                    Binding(binding.get("type", ""), binding["uuid"], bool(binding.get("deleted")))
                    for binding in row.allowed_scopes
                    if binding.get("uuid")
                )
            ),
        )
        return CachedCredential(
            principal=self._principal(row, CredentialKind.PAT, limits),
            credential_id=row.id,
            valid_until=PersonalAccessToken.usable_until(row.expires_at, row.grace_until).timestamp(),
            networks=share(tuple(acl_network(entry) for entry in row.allowed_networks)),
            last_used_ip=share(row.last_used_ip),
        )

    def _principal(self, row: Row[Any], kind: CredentialKind, limits: TokenLimits | None) -> Principal:
        """The owner's principal for this kind and limits: one object for all such tokens (decision memo keys)."""
        return self._share(
            Principal(
                user_id=row.user_id,
                user_uuid=row.user_uuid,
                username=row.username,
                is_staff=row.is_staff,
                kind=kind,
                limits=limits,
            )
        )
