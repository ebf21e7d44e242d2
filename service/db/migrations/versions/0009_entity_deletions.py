"""entity deletions, read by the fact polls of other workers

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "entity_deletion",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity_deletion")),
    )
    with op.batch_alter_table("entity_deletion", schema=None) as batch_op:
        batch_op.create_index("ix_entity_deletion_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("entity_deletion", schema=None) as batch_op:
        batch_op.drop_index("ix_entity_deletion_updated_at")
    op.drop_table("entity_deletion")
