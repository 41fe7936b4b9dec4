"""consent evidence (append-only), contact preferences, complaint handling, erasure requests

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Portable types, as in mo.oltp.models (frozen here: a migration must not change when models do).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

APPEND_ONLY = "consent_evidence is append-only"


def upgrade() -> None:
    op.create_table(
        "consent_evidence",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("text_version", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("decided_at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_consent_evidence_customer", "consent_evidence", ["customer_id", "channel", "purpose", "id"])
    op.create_table(
        "contact_preferences",
        sa.Column("customer_id", ID, primary_key=True, autoincrement=False),
        sa.Column("max_push_per_week", sa.Integer(), nullable=True),
        sa.Column("quiet_start", sa.String(5), nullable=True),
        sa.Column("quiet_end", sa.String(5), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "erasure_requests",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("request_no", sa.String(36), nullable=False, unique=True),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("basis", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("erased", sa.Text(), nullable=False),
        sa.Column("kept", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_erasure_requests_customer_id", "erasure_requests", ["customer_id"])
    op.create_table(
        "complaint_handling",
        sa.Column("complaint_id", ID, primary_key=True, autoincrement=False),
        sa.Column("summary", sa.String(1000), nullable=True),
        sa.Column("assigned_to", sa.String(80), nullable=True),
        sa.Column("assigned_at", TIMESTAMP, nullable=True),
        sa.Column("resolution", sa.String(1000), nullable=True),
        sa.Column("resolved_by", sa.String(80), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    _append_only_triggers(op.get_bind().dialect.name)


def _append_only_triggers(dialect: str) -> None:
    """Refuse UPDATE and DELETE on consent_evidence inside the database (as audit_log in 0004)."""
    for verb in ("UPDATE", "DELETE"):
        name = f"consent_evidence_no_{verb.lower()}"
        if dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON consent_evidence "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
        elif dialect in ("mysql", "mariadb"):
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON consent_evidence FOR EACH ROW "
                f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{APPEND_ONLY}'"
            )
        elif dialect == "postgresql":
            if verb == "UPDATE":
                op.execute(
                    "CREATE FUNCTION consent_evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
                )
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON consent_evidence "
                "FOR EACH ROW EXECUTE FUNCTION consent_evidence_append_only()"
            )
    if dialect == "postgresql":
        op.execute(
            "CREATE TRIGGER consent_evidence_no_truncate BEFORE TRUNCATE ON consent_evidence "
            "FOR EACH STATEMENT EXECUTE FUNCTION consent_evidence_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "postgresql":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS consent_evidence_no_{verb}")
    op.drop_table("complaint_handling")
    op.drop_table("erasure_requests")
    op.drop_table("contact_preferences")
    op.drop_table("consent_evidence")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS consent_evidence_append_only()")
