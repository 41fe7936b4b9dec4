"""source systems

Revision ID: 0001
Revises:
Create Date: 2026-11-22 07:11:00.395068
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Portable types, as in mo.oltp.models (frozen here: a migration must not change when models do).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("gender", sa.String(length=1), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("province", sa.String(length=16), nullable=False),
        sa.Column("city", sa.String(length=32), nullable=False),
        sa.Column("acquisition_channel", sa.String(length=16), nullable=False),
        sa.Column("wechat_openid", sa.String(length=40), nullable=True),
        sa.Column("app_user_id", sa.String(length=32), nullable=True),
        sa.Column("risk_rating", sa.String(length=2), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customers_id_number"), ["id_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_customers_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "organizations",
        sa.Column("id", ID, nullable=False),
        sa.Column("org_code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("province", sa.String(length=16), nullable=False),
        sa.Column("city", sa.String(length=32), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_code"),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_organizations_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "products",
        sa.Column("id", ID, nullable=False),
        sa.Column("product_code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("line", sa.String(length=16), nullable=False),
        sa.Column("risk_level", sa.String(length=2), nullable=False),
        sa.Column("requires_dual_recording", sa.Boolean(), nullable=False),
        sa.Column("base_premium", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("term_months", sa.Integer(), nullable=False),
        sa.Column("qc_sample_ratio", sa.Numeric(precision=5, scale=4), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("product_code"),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_products_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "world_clock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("current_date", sa.Date(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("next_ids", sa.String(length=512), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "agents",
        sa.Column("id", ID, nullable=False),
        sa.Column("agent_code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("license_no", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hired_date", sa.Date(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agent_code"),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agents_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "consents",
        sa.Column("id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("decided_at", TIMESTAMP, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consents_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "policies",
        sa.Column("id", ID, nullable=False),
        sa.Column("policy_no", sa.String(length=24), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=True),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("vehicle_plate", sa.String(length=16), nullable=True),
        sa.Column("vehicle_model", sa.String(length=32), nullable=True),
        sa.Column("vehicle_value", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("vehicle_first_registered", sa.Date(), nullable=True),
        sa.Column("property_address", sa.String(length=128), nullable=True),
        sa.Column("sum_insured", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("premium", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("payment_mode", sa.String(length=16), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("renewal_of", ID, nullable=True),
        sa.Column("issued_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
        ),
        sa.ForeignKeyConstraint(
            ["renewal_of"],
            ["policies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("policy_no"),
    )
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policies_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_policies_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "claims",
        sa.Column("id", ID, nullable=False),
        sa.Column("claim_no", sa.String(length=24), nullable=False),
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("incident_at", TIMESTAMP, nullable=False),
        sa.Column("incident_province", sa.String(length=16), nullable=False),
        sa.Column("incident_city", sa.String(length=32), nullable=False),
        sa.Column("incident_type", sa.String(length=24), nullable=False),
        sa.Column("reported_at", TIMESTAMP, nullable=False),
        sa.Column("amount_claimed", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("amount_approved", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("amount_paid", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=False),
        sa.Column("under_review_at", TIMESTAMP, nullable=True),
        sa.Column("docs_requested_at", TIMESTAMP, nullable=True),
        sa.Column("approved_at", TIMESTAMP, nullable=True),
        sa.Column("rejected_at", TIMESTAMP, nullable=True),
        sa.Column("paying_at", TIMESTAMP, nullable=True),
        sa.Column("paid_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("claim_no"),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claims_policy_id"), ["policy_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_claims_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "complaints",
        sa.Column("id", ID, nullable=False),
        sa.Column("complaint_no", sa.String(length=24), nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("policy_id", ID, nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("complaint_no"),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_complaints_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaints_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "sales_recordings",
        sa.Column("id", ID, nullable=False),
        sa.Column("ticket_no", sa.String(length=24), nullable=False),
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("agent_id", ID, nullable=False),
        sa.Column("org_id", ID, nullable=False),
        sa.Column("product_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("file_uri", sa.String(length=160), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("checksum_sha256", sa.String(length=64), nullable=False),
        sa.Column("is_encrypted", sa.Boolean(), nullable=False),
        sa.Column("review_status", sa.String(length=16), nullable=False),
        sa.Column("reviewer_code", sa.String(length=16), nullable=True),
        sa.Column("review_comment", sa.String(length=255), nullable=True),
        sa.Column("reviewed_at", TIMESTAMP, nullable=True),
        sa.Column("qc_sampled", sa.Boolean(), nullable=False),
        sa.Column("qc_result", sa.String(length=8), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policies.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_no"),
    )
    with op.batch_alter_table("sales_recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sales_recordings_policy_id"), ["policy_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sales_recordings_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sales_recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sales_recordings_updated_at"))
        batch_op.drop_index(batch_op.f("ix_sales_recordings_policy_id"))

    op.drop_table("sales_recordings")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaints_updated_at"))
        batch_op.drop_index(batch_op.f("ix_complaints_customer_id"))

    op.drop_table("complaints")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claims_updated_at"))
        batch_op.drop_index(batch_op.f("ix_claims_policy_id"))

    op.drop_table("claims")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policies_updated_at"))
        batch_op.drop_index(batch_op.f("ix_policies_customer_id"))

    op.drop_table("policies")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_updated_at"))
        batch_op.drop_index(batch_op.f("ix_consents_customer_id"))

    op.drop_table("consents")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agents_updated_at"))

    op.drop_table("agents")
    op.drop_table("world_clock")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_updated_at"))

    op.drop_table("products")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organizations_updated_at"))

    op.drop_table("organizations")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_updated_at"))
        batch_op.drop_index(batch_op.f("ix_customers_id_number"))

    op.drop_table("customers")
