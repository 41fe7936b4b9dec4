"""serving API: staff users, API clients, the append-only audit log, idempotency keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

APPEND_ONLY = "audit_log is append-only"


def _accounts(name: str, login: str, secret: str, extra: list[sa.Column]) -> None:
    op.create_table(
        name,
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(login, sa.String(64), nullable=False, unique=True),
        *extra,
        sa.Column(secret, sa.String(255), nullable=False),
        sa.Column("role", sa.String(24), nullable=False),
        sa.Column("org_id", ID, nullable=True),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def upgrade() -> None:
    _accounts(
        "staff_users",
        "username",
        "password_hash",
        [
            sa.Column("display_name", sa.String(64), nullable=False),
            sa.Column("failed_logins", sa.Integer(), nullable=False),
            sa.Column("locked_until", TIMESTAMP, nullable=True),
        ],
    )
    _accounts(
        "api_clients",
        "client_id",
        "secret_hash",
        [
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True),
        ],
    )
    op.create_table(
        "audit_log",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(24), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("customer_id", ID, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_customer", "audit_log", ["customer_id", "at"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("actor", "key", name="uq_idempotency_keys_actor_key"),
    )
    _append_only_triggers(op.get_bind().dialect.name)


def _append_only_triggers(dialect: str) -> None:
    """Refuse UPDATE and DELETE on audit_log inside the database itself."""
    for verb in ("UPDATE", "DELETE"):
        name = f"audit_log_no_{verb.lower()}"
        if dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON audit_log BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
        elif dialect in ("mysql", "mariadb"):
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON audit_log FOR EACH ROW "
                f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{APPEND_ONLY}'"
            )
        elif dialect == "postgresql":
            if verb == "UPDATE":
                op.execute(
                    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
                )
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {verb} ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
            )
    if dialect == "postgresql":  # TRUNCATE bypasses row triggers
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "postgresql":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{verb}")
    op.drop_table("idempotency_keys")
    op.drop_table("audit_log")  # PostgreSQL drops the table's triggers with it
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table("api_clients")
    op.drop_table("staff_users")
