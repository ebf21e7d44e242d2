"""longer token_prefix: past the expiry into the random part

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 08:40:00.000000

A PAT's token_prefix was its first 8 characters, "w_" and six digits of the expiry, the same for every token a
user made on one day. New tokens show the expiry and 8 random characters; existing rows keep their prefix (the
plaintext needed to extend it is not stored).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("personal_access_token", schema=None) as batch_op:
        batch_op.alter_column("token_prefix", existing_type=sa.String(length=8), type_=sa.String(length=32))


def downgrade() -> None:
    op.execute("UPDATE personal_access_token SET token_prefix = substr(token_prefix, 1, 8)")
    with op.batch_alter_table("personal_access_token", schema=None) as batch_op:
        batch_op.alter_column("token_prefix", existing_type=sa.String(length=32), type_=sa.String(length=8))
