"""Data access for PATs, including the writes other parts make to them (usage counts, server-secret rotation)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import CursorResult

from service.pats.models import PersonalAccessToken

_TABLE = cast(Table, PersonalAccessToken.__table__)
_RECORD_USES = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("pat_id"))
    .values(
        use_count=_TABLE.c.use_count + bindparam("uses"),
        last_used_at=bindparam("used_at"),
        last_used_ip=bindparam("used_from"),
        updated_at=_TABLE.c.updated_at,  # use is no change: see service.security.sync
    )
)


@dataclass(frozen=True, slots=True)
class PatUses:
    """Uses of one PAT to add to its row: how many, and when and from where the last one came."""

    pat_id: int
    count: int
    last_used_at: datetime
    last_used_ip: str | None


class PatRepository(SQLAlchemyAsyncRepository[PersonalAccessToken]):
    """Data access for PATs."""

    model_type = PersonalAccessToken

    async def record_uses(self, uses: Iterable[PatUses]) -> None:
        """Add uses to their tokens in one statement executed for many rows; ``updated_at`` does not move."""
        parameters = [
            {"pat_id": use.pat_id, "uses": use.count, "used_at": use.last_used_at, "used_from": use.last_used_ip}
            for use in uses
        ]
        if parameters:
            await self.session.execute(_RECORD_USES, parameters)

    async def names(self, pat_ids: Collection[int]) -> dict[int, tuple[str, str]]:
        """``(uuid hex, name)`` of each of ``pat_ids`` that exists."""
        if not pat_ids:
            return {}
        rows = await self.session.execute(
            select(PersonalAccessToken.id, PersonalAccessToken.uuid, PersonalAccessToken.name).where(
                PersonalAccessToken.id.in_(pat_ids)
            )
        )
        return {pat_id: (uuid.hex, name) for pat_id, uuid, name in rows}

    async def rehash(self, old_hashes: Collection[str], new_hash: str) -> bool:
        """Store the token found under one of ``old_hashes`` under ``new_hash`` instead; whether there was one."""
        result: CursorResult[Any] = await self.session.execute(  # type: ignore[assignment]
            update(PersonalAccessToken)
            .where(PersonalAccessToken.token_hash.in_(old_hashes))
            .values(token_hash=new_hash)
        )
        return bool(result.rowcount)
