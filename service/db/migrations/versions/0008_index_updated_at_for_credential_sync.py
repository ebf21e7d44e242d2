"""index updated_at of users and tokens for cross-worker credential sync

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-01 08:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "user_account": "ix_user_account_updated_at",
    "personal_access_token": "ix_personal_access_token_updated_at",
    "auth_token": "ix_auth_token_updated_at",
}


def upgrade() -> None:
    for table, index in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(index, ["updated_at"], unique=False)


def downgrade() -> None:
    for table, index in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(index)
