"""The account's pace: the next free turn and any pause, shared by every run on it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_pace",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("next_turn", sa.Float, nullable=False),
        sa.Column("paused_until", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("account_pace")
