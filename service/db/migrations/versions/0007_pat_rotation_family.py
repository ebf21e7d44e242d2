"""rotation family of personal access tokens

Revision ID: 0007
Revises: 0003
Create Date: 2026-12-01 08:00:00.000000

A rotated token's successor inherits its ``family_id``, so a rotated-out token presented again can revoke every
live token rotated from the same original (reuse detection). ``rotated_at`` marks the rotated-out tokens. Existing
tokens start a family of their own (their own uuid); existing rotations are not linked and stay unmarked.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision: str = "0007"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("personal_access_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("family_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("rotated_at", DateTimeUTC(timezone=True), nullable=True))
    op.execute("UPDATE personal_access_token SET family_id = uuid")
    with op.batch_alter_table("personal_access_token", schema=None) as batch_op:
        batch_op.alter_column("family_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_index(batch_op.f("ix_personal_access_token_family_id"), ["family_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("personal_access_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_personal_access_token_family_id"))
        batch_op.drop_column("rotated_at")
        batch_op.drop_column("family_id")
