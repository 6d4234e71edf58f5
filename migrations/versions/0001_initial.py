"""The first schema: campaigns, their rows, and the attempt log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("sender_id", sa.Integer, nullable=False),
        sa.Column("template_id", sa.Integer, nullable=False),
        sa.Column("total_rows", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("halt_reason", sa.Text),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "rows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("phone", sa.String(64), nullable=False),
        sa.Column("name", sa.String(1000), nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_at", sa.Float),
        sa.Column("conversation_id", sa.BigInteger),
        sa.Column("message_id", sa.BigInteger),
        sa.Column("whatsapp_message_id", sa.BigInteger),
        sa.Column("message_sid", sa.String(64)),
        sa.Column("api_status", sa.String(40)),
        sa.Column("error_code", sa.String(80)),
        sa.Column("error_message", sa.Text),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("sent_at", TIMESTAMP),
        sa.UniqueConstraint("campaign_id", "row"),
    )
    op.create_index("ix_rows_campaign_state_row", "rows", ["campaign_id", "state", "row"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("row_id", sa.Integer, sa.ForeignKey("rows.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("fate", sa.String(10), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("error_code", sa.String(80)),
        sa.Column("error_message", sa.Text),
        sa.Column("raw_body", sa.Text),
        sa.Column("at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_attempts_campaign_id", "attempts", ["campaign_id"])
    op.create_index("ix_attempts_row_id", "attempts", ["row_id"])


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_table("rows")
    op.drop_table("campaigns")
