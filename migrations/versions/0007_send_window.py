"""Each recipient's daytime: a pending row may wait for its recipient's send window.

`rows.daytime_at` (epoch seconds) is when a pending row outside its recipient's send
window may go; such a row's error_code is SEND_WINDOW. It is not an attempt, and every
run decides it again with its own --send-window.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rows") as table:
        table.add_column(sa.Column("daytime_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("rows") as table:
        table.drop_column("daytime_at")
