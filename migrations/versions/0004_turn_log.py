"""The account's turn log and learned guard: pace on what left, learn from 429s.

The pace row loses `next_turn` (the next turn is now placed from the log of recent
turns) and gains `guard`, the spacing learned from 429s. `account_turns` holds the
recent turns of each account: when each was planned and when it was written out.
Times are the database's clock, in epoch seconds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_pace") as table:
        table.drop_column("next_turn")
        table.add_column(
            sa.Column("guard", sa.Float, nullable=False, server_default=sa.text("0.01"))
        )
    op.create_table(
        "account_turns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("planned", sa.Float, nullable=False),
        sa.Column("written", sa.Float),
    )
    op.create_index("ix_account_turns_account_planned", "account_turns", ["account", "planned"])


def downgrade() -> None:
    op.drop_table("account_turns")
    with op.batch_alter_table("account_pace") as table:
        table.drop_column("guard")
        table.add_column(
            sa.Column("next_turn", sa.Float, nullable=False, server_default=sa.text("0"))
        )
