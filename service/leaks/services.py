"""Revoking credentials that anyone reports found in public (in the spirit of RFC 7009 and GitHub's revocation API).

Strings that are not tokengate tokens — wrong prefix, shape or checksum, or a PAT whose embedded expiry has passed —
are dropped here, before any database access. The rest are looked up by their keyed hash and, when live, revoked.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from service.auth_tokens.services import AuthTokenService
from service.crypto import is_legacy_key, pat_expiry
from service.pats.services import PatService

if TYPE_CHECKING:
    from service.runtime import Runtime


def live_candidates(credentials: list[str], now: float) -> tuple[list[str], list[str]]:
    """``(pats, legacy_keys)``: the distinct strings that could be live tokens, judged offline."""
    pats, keys = set(), set()
    for credential in credentials:
        expiry = pat_expiry(credential)
        if expiry is not None and expiry > now:
            pats.add(credential)
        elif is_legacy_key(credential):
            keys.add(credential)
    return sorted(pats), sorted(keys)


async def revoke_reported(runtime: Runtime, credentials: list[str], source: str, reporter: str) -> int:
    """Revoke every live token among ``credentials``; returns how many (never shown to the reporter)."""
    pats, keys = live_candidates(credentials, time.time())
    if not pats and not keys:
        return 0
    token_hash = runtime.keyring.token_hash
    revoked = 0
    async with runtime.session() as session:
        if pats:
            service = PatService(session=session, runtime=runtime)
            revoked += await service.revoke_leaked([token_hash(t) for t in pats], source, reporter)
        if keys:
            legacy = AuthTokenService(session=session, runtime=runtime)
            revoked += await legacy.delete_leaked([token_hash(k) for k in keys], source, reporter)
    return revoked
