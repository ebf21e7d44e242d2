"""mark token bindings whose entity is gone as deleted

Revision ID: 0004
Revises: 0007
Create Date: 2026-12-01 08:00:00.000000

A binding grants nothing once its entity was deleted, even if an entity with the same uuid is registered again
(of any type). Deletions now mark the bindings as they happen; this marks those already dangling: every binding
whose uuid names no entity of the binding's type.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_tokens = sa.table("personal_access_token", sa.column("id", sa.BigInteger), sa.column("allowed_scopes", sa.JSON))
_entities = sa.table("entity", sa.column("uuid", sa.Uuid), sa.column("type", sa.String))


def upgrade() -> None:
    connection = op.get_bind()
    existing = {(str(uuid), entity_type) for uuid, entity_type in connection.execute(sa.select(_entities))}
    when = datetime.now(UTC).isoformat()
    for token_id, bindings in connection.execute(sa.select(_tokens.c.id, _tokens.c.allowed_scopes)).all():
        marked = [_marked(binding, existing, when) for binding in bindings or []]
        if marked != (bindings or []):
            connection.execute(sa.update(_tokens).where(_tokens.c.id == token_id).values(allowed_scopes=marked))


def _marked(binding: dict[str, Any], existing: set[tuple[str, str]], when: str) -> dict[str, Any]:
    if binding.get("deleted") or (str(binding.get("uuid")), binding.get("type")) in existing:
        return binding
    return {**binding, "deleted": when}


def downgrade() -> None:
    """The marks stay: unmarking would let a reused uuid inherit a deleted entity's bindings."""
