"""receipts that overtake the worker's sent write, an index to find a WeChat receipt's message, SMS short links,
the one-dispatcher lease

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Portable types, as in mo.oltp.models (frozen here: a migration must not change when models do).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    # WeChat's receipts name only the provider's MsgID: found through this index, not a scan of every delivery
    op.create_index("ix_contact_deliveries_provider_message", "contact_deliveries", ["provider", "provider_message_id"])
    op.create_table(
        "early_receipts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=True),
        sa.Column("provider_message_id", sa.String(64), nullable=True),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=True),
        sa.Column("received_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_early_receipts_message", "early_receipts", ["message_id"])
    op.create_index("ix_early_receipts_provider_message", "early_receipts", ["provider", "provider_message_id"])
    op.create_index("ix_early_receipts_received_at", "early_receipts", ["received_at"])
    op.create_table(
        "short_links",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("url", sa.String(1000), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_short_links_message", "short_links", ["message_id"])
    op.create_table(
        "dispatch_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("acquired_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dispatch_leases")
    op.drop_table("short_links")
    op.drop_table("early_receipts")
    op.drop_index("ix_contact_deliveries_provider_message", table_name="contact_deliveries")
