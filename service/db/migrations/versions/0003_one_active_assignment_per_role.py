"""one active assignment per user, role and entity

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 18:00:00.000000

Two identical grants racing each other could both pass the service's "already holds" check. A partial unique
index makes the database refuse the second. Existing duplicates are resolved first: the newest active row of each
(user, role, entity) stays active, older ones are closed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE role_assignment SET is_active = false WHERE is_active AND id NOT IN ("
        "SELECT MAX(id) FROM role_assignment WHERE is_active GROUP BY user_id, role, entity_id)"
    )
    with op.batch_alter_table("role_assignment", schema=None) as batch_op:
        batch_op.create_index(
            "ux_role_assignment_active",
            ["user_id", "role", "entity_id"],
            unique=True,
            postgresql_where=sa.text("is_active"),
            sqlite_where=sa.text("is_active"),
        )


def downgrade() -> None:
    with op.batch_alter_table("role_assignment", schema=None) as batch_op:
        batch_op.drop_index(
            "ux_role_assignment_active", postgresql_where=sa.text("is_active"), sqlite_where=sa.text("is_active")
        )
