"""The message guard: which account a campaign sends from, each row's message key, and
when each row was last claimed for sending (see Store.claim).

Campaigns and rows stored before this revision have no account and no key: the guard
cannot tell what they sent (the key's hash was never stored), so it does not count them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("account", sa.String(32)))
    op.add_column("rows", sa.Column("message_key", sa.String(64)))
    op.add_column("rows", sa.Column("claimed_at", sa.Float))  # epoch seconds
    op.create_index("ix_rows_message_key", "rows", ["message_key"])


def downgrade() -> None:
    op.drop_index("ix_rows_message_key", table_name="rows")
    with op.batch_alter_table("rows") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("message_key")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("account")
