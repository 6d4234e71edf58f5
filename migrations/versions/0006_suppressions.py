"""Opt-outs and the frequency cap: the account's suppression list, and the index that
counts a phone's recent sends (see eligibility.py).

`suppressions` holds the numbers (E.164) an account must never message, one row per
account and number, with why and when each was added. `ix_rows_phone_claimed_at` lets
the claim count the messages a phone was sent lately, in any campaign.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("phone", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("account", "phone"),
    )
    op.create_index("ix_rows_phone_claimed_at", "rows", ["phone", "claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_rows_phone_claimed_at", table_name="rows")
    op.drop_table("suppressions")
