"""token lifecycle: rotation families, expiry notices, webhook outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:00:00.000000

A rotated token's successor inherits its ``family_id``, so a rotated-out token presented again can revoke every
live token rotated from the same original (reuse detection). ``rotated_at`` marks the rotated-out tokens. Existing
tokens start a family of their own (their own uuid); existing rotations are not linked and stay unmarked.
``expiry_notice_days`` records the nearest expiry notice a token has had; ``webhook_delivery`` is the outbox of
events to deliver to the configured webhook.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from advanced_alchemy.types import DateTimeUTC
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("personal_access_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("family_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("rotated_at", DateTimeUTC(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("expiry_notice_days", sa.Integer(), nullable=True))
    op.execute("UPDATE personal_access_token SET family_id = uuid")
    with op.batch_alter_table("personal_access_token", schema=None) as batch_op:
        batch_op.alter_column("family_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_index(batch_op.f("ix_personal_access_token_family_id"), ["family_id"], unique=False)

    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("lease_until", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("delivered_at", DateTimeUTC(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", DateTimeUTC(timezone=True), nullable=False),
        sa.Column("updated_at", DateTimeUTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["audit_event.id"], name=op.f("fk_webhook_delivery_event_id_audit_event"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_delivery_event_id")),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_delivery_next_attempt_at"), ["next_attempt_at"], unique=False)


def downgrade() -> None:
    op.drop_table("webhook_delivery")
    with op.batch_alter_table("personal_access_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_personal_access_token_family_id"))
        batch_op.drop_column("expiry_notice_days")
        batch_op.drop_column("rotated_at")
        batch_op.drop_column("family_id")
