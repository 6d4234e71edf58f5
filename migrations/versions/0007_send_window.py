"""Each recipient's daytime: a pending row may wait for its recipient's send window.

`rows.daytime_at` (epoch seconds) is when a pending row outside its recipient's send
window may go; such a row's error_code is SEND_WINDOW. It is not an attempt, and every
run decides it again with the campaign's window.

The window belongs to the campaign: `campaigns.send_window` (HH:MM-HH:MM, None: any
hour) and `campaigns.default_timezone` are the ones it was started with, kept for every
later run, resume and retry unless one of them passes --send-window.

The frequency cap is kept the same way: `campaigns.max_per_recipient` (N/PERIOD such as
1/1d, None: no cap), unless a later run passes --max-per-recipient.

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
    with op.batch_alter_table("campaigns") as table:
        table.add_column(sa.Column("send_window", sa.String(11)))
        table.add_column(sa.Column("default_timezone", sa.String(64)))
        table.add_column(sa.Column("max_per_recipient", sa.String(40)))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as table:
        table.drop_column("max_per_recipient")
        table.drop_column("default_timezone")
        table.drop_column("send_window")
    with op.batch_alter_table("rows") as table:
        table.drop_column("daytime_at")
