"""Delivery truth: what the delivery status webhook said of each row, every event it
received, the sender numbers it learned, and when each request left (for the chart).

Rows gain their delivery status, its time and error, and `resolved_by` (an `unknown`
row the webhook showed was sent). Rows are looked up by message_sid and
whatsapp_message_id, so both get an index. Attempts gain `left_at`: older attempts
have none, and the chart counts their accepted sends at the time they were recorded.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ROW_COLUMNS = (
    ("delivery_status", sa.String(20)),
    ("delivery_updated_at", sa.DateTime(timezone=True)),
    ("delivery_error_code", sa.String(80)),
    ("delivery_error_message", sa.Text),
    ("resolved_by", sa.String(20)),
)


def upgrade() -> None:
    for name, kind in ROW_COLUMNS:
        op.add_column("rows", sa.Column(name, kind))
    op.create_index("ix_rows_message_sid", "rows", ["message_sid"])
    op.create_index("ix_rows_whatsapp_message_id", "rows", ["whatsapp_message_id"])
    op.add_column("attempts", sa.Column("left_at", sa.DateTime(timezone=True)))
    op.create_table(
        "delivery_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(40)),
        sa.Column("status", sa.String(20)),
        sa.Column("message_sid", sa.String(64)),
        sa.Column("whatsapp_message_id", sa.BigInteger),
        sa.Column("to_phone", sa.String(64)),
        sa.Column("row_id", sa.Integer, sa.ForeignKey("rows.id")),
        sa.Column("outcome", sa.String(20), nullable=False),
    )
    for column in ("message_sid", "to_phone"):
        op.create_index(f"ix_delivery_events_{column}", "delivery_events", [column])
    op.create_index("ix_delivery_events_row_received", "delivery_events", ["row_id", "received_at"])
    op.create_table(
        "sender_numbers",
        sa.Column("sender_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("phone", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("sender_numbers")
    op.drop_table("delivery_events")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("left_at")
    op.drop_index("ix_rows_whatsapp_message_id", table_name="rows")
    op.drop_index("ix_rows_message_sid", table_name="rows")
    with op.batch_alter_table("rows") as batch:
        for name, _ in reversed(ROW_COLUMNS):
            batch.drop_column(name)
