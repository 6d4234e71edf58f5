"""Test sends: the single messages `campaign test` sends to the operator's own number.

Kept apart from every campaign: a test send is never a row, and never counts as one.
A test send is recorded `sending` before its request leaves, then sent, failed or unknown.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "test_sends",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("sender_id", sa.Integer, nullable=False),
        sa.Column("template_id", sa.Integer, nullable=False),
        sa.Column("to_phone", sa.String(64), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("error_code", sa.String(80)),
        sa.Column("error_message", sa.Text),
        sa.Column("message_sid", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("test_sends")
