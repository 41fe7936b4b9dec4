"""claims through the serving API: claim documents and claim status history (not synced), read indexes on claims

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
# Joins the outbox (0003) and the accounts/audit (0004) branches; rechain to one parent when they are linear.
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "claim_documents",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.String(36), nullable=False, unique=True),
        sa.Column("claim_id", ID, sa.ForeignKey("claims.id"), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.String(80), nullable=False),
        sa.Column("uploaded_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_claim_documents_claim_id", "claim_documents", ["claim_id", "id"])
    op.create_table(
        "claim_status_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("claim_id", ID, sa.ForeignKey("claims.id"), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("changed_by", sa.String(80), nullable=False),
        sa.Column("changed_by_role", sa.String(24), nullable=False),
        sa.Column("changed_at", TIMESTAMP, nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("amount", sa.Numeric(18, 2), nullable=True),
    )
    op.create_index("ix_claim_status_history_claim_id", "claim_status_history", ["claim_id", "id"])
    # Indexes only (no column): the claims contract and the lake sync are unchanged.
    op.create_index("ix_claims_customer_id_submitted_at", "claims", ["customer_id", "submitted_at"])
    op.create_index("ix_claims_status_submitted_at", "claims", ["status", "submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_claims_status_submitted_at", table_name="claims")
    op.drop_index("ix_claims_customer_id_submitted_at", table_name="claims")
    op.drop_table("claim_status_history")
    op.drop_table("claim_documents")
