"""campaigns, lifecycle events, occurrences and audiences, the contact ledger, deliveries, holdouts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Portable types, as in mo.oltp.models (frozen here: a migration must not change when models do).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

APPEND_ONLY = ("campaign_events", "contact_ledger", "contact_deliveries")


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("campaign_code", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("objective", sa.String(24), nullable=False),
        sa.Column("product_line", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("offer_type", sa.String(16), nullable=False),
        sa.Column("offer_product_code", sa.String(16), nullable=True),
        sa.Column("offer_detail", sa.Text(), nullable=True),
        sa.Column("segment_id", sa.String(64), nullable=False),
        sa.Column("segment_version", sa.Integer(), nullable=True),
        sa.Column("channels", sa.Text(), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("holdout_share", sa.Numeric(5, 4), nullable=False),
        sa.Column("ends_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author", sa.String(80), nullable=False),
        sa.Column("approver", sa.String(80), nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.Column("decision_note", sa.String(1000), nullable=True),
        sa.Column("next_run_at", TIMESTAMP, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_campaigns_next_run_at", "campaigns", ["next_run_at"])
    op.create_index("ix_campaigns_status", "campaigns", ["status", "next_run_at"])
    op.create_table(
        "campaign_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", ID, nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(24), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_campaign_events_campaign", "campaign_events", ["campaign_id", "id"])
    op.create_table(
        "campaign_occurrences",
        sa.Column("campaign_id", ID, primary_key=True, autoincrement=False),
        sa.Column("occurrence", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("due_at", TIMESTAMP, nullable=False),
        sa.Column("refresh_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("audience", sa.Integer(), nullable=True),
        sa.Column("produced_to", ID, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
    )
    op.create_table(
        "campaign_audience",
        sa.Column("campaign_id", ID, primary_key=True, autoincrement=False),
        sa.Column("occurrence", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("customer_id", ID, primary_key=True, autoincrement=False),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_table(
        "contact_ledger",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("touch_key", sa.String(96), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("final_key", sa.String(96), nullable=True, unique=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("campaign_id", ID, nullable=True),
        sa.Column("occurrence", sa.Integer(), nullable=True),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("product_line", sa.String(16), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("not_before", TIMESTAMP, nullable=True),
        sa.Column("message_id", sa.String(36), nullable=True, unique=True),
        sa.Column("decided_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("touch_key", "attempt", name="uq_contact_ledger_touch_attempt"),
    )
    op.create_index("ix_contact_ledger_customer", "contact_ledger", ["customer_id", "decided_at"])
    op.create_index("ix_contact_ledger_campaign", "contact_ledger", ["campaign_id", "occurrence"])
    op.create_table(
        "contact_deliveries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("ledger_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=True),
        sa.Column("provider_message_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(1000), nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("message_id", "state", name="uq_contact_deliveries_message_state"),
    )
    op.create_index("ix_contact_deliveries_at", "contact_deliveries", ["at"])
    op.create_table(
        "holdout_assignments",
        sa.Column("product_line", sa.String(16), primary_key=True),
        sa.Column("cycle", sa.String(16), primary_key=True),
        sa.Column("customer_id", ID, primary_key=True, autoincrement=False),
        sa.Column("held_out", sa.Boolean(), nullable=False),
        sa.Column("share", sa.Numeric(5, 4), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("assigned_at", TIMESTAMP, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        _append_only_triggers(dialect, table)


def _append_only_triggers(dialect: str, table: str) -> None:
    """Refuse UPDATE and DELETE on ``table`` inside the database (as audit_log in 0004)."""
    message = f"{table} is append-only"
    for verb in ("UPDATE", "DELETE"):
        name = f"{table}_no_{verb.lower()}"
        if dialect == "sqlite":
            op.execute(f"CREATE TRIGGER {name} BEFORE {verb} ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END")
        elif dialect in ("mysql", "mariadb"):
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON {table} FOR EACH ROW "
                f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'"
            )
        elif dialect == "postgresql":
            if verb == "UPDATE":
                op.execute(
                    f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
                )
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
            )
    if dialect == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect != "postgresql":
            for verb in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
    for table in (
        "holdout_assignments",
        "contact_deliveries",
        "contact_ledger",
        "campaign_audience",
        "campaign_occurrences",
        "campaign_events",
        "campaigns",
    ):
        op.drop_table(table)
    if dialect == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
