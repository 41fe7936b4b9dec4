"""The insurer's core systems as they hold their data (policy admin, claims, sales dual recording).

These tables are the *source* the platform syncs from. The same Alembic migrations create them on
SQLite (the embedded default), MariaDB and PostgreSQL, so types stay portable: bounded VARCHARs,
DECIMAL(18,2) for money, naive UTC DATETIMEs, and a BIGINT id assigned by the writer.

Every table carries ``created_at``, ``updated_at`` (the sync watermark, indexed) and ``deleted_at``
(the soft-delete marker). Column lists here must match the contracts in ``schemas/sources/``; a test
holds them together.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments INTEGER PRIMARY KEY; elsewhere ids are BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(18, 2)
# Microsecond precision everywhere (MariaDB DATETIME would silently drop it).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class Base(DeclarativeBase):
    pass


class Audited:
    """Timestamps every source row carries (UTC, naive)."""

    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Organization(Audited, Base):
    """Head office, branches and sub-branches (机构)."""

    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_code: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    level: Mapped[str] = mapped_column(String(16), nullable=False)  # head_office | branch | sub_branch
    parent_id: Mapped[int | None] = mapped_column(Id, ForeignKey("organizations.id"))
    province: Mapped[str] = mapped_column(String(16), nullable=False)
    city: Mapped[str] = mapped_column(String(32), nullable=False)


class Agent(Audited, Base):
    """Sales agents and staff who sell, record and review."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    agent_code: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    phone: Mapped[str] = mapped_column(String(20), nullable=False)
    org_id: Mapped[int] = mapped_column(Id, ForeignKey("organizations.id"), nullable=False)
    license_no: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # active | suspended | terminated
    hired_date: Mapped[date] = mapped_column(Date, nullable=False)


class Customer(Audited, Base):
    """Policy holders (投保人) with their contact identities and suitability rating."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), nullable=False)
    id_number: Mapped[str] = mapped_column(String(18), nullable=False, index=True)
    phone: Mapped[str] = mapped_column(String(20), nullable=False)
    gender: Mapped[str] = mapped_column(String(1), nullable=False)  # M | F
    birth_date: Mapped[date] = mapped_column(Date, nullable=False)
    province: Mapped[str] = mapped_column(String(16), nullable=False)
    city: Mapped[str] = mapped_column(String(32), nullable=False)
    acquisition_channel: Mapped[str] = mapped_column(String(16), nullable=False)
    wechat_openid: Mapped[str | None] = mapped_column(String(40))
    app_user_id: Mapped[str | None] = mapped_column(String(32))
    risk_rating: Mapped[str] = mapped_column(String(2), nullable=False)  # R1 (cautious) .. R5 (aggressive)


class Product(Audited, Base):
    """Insurance products on the shelf."""

    __tablename__ = "products"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    product_code: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    line: Mapped[str] = mapped_column(String(16), nullable=False)  # auto | property | accident | health | life
    risk_level: Mapped[str] = mapped_column(String(2), nullable=False)  # R1 .. R5
    requires_dual_recording: Mapped[bool] = mapped_column(Boolean, nullable=False)
    base_premium: Mapped[Decimal] = mapped_column(Money, nullable=False)
    term_months: Mapped[int] = mapped_column(Integer, nullable=False)
    qc_sample_ratio: Mapped[Decimal] = mapped_column(Numeric(5, 4), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # on_sale | withdrawn


class Policy(Audited, Base):
    """Quotes and policies, with the insured subject and the renewal chain."""

    __tablename__ = "policies"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    policy_no: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    customer_id: Mapped[int] = mapped_column(Id, ForeignKey("customers.id"), nullable=False, index=True)
    product_id: Mapped[int] = mapped_column(Id, ForeignKey("products.id"), nullable=False)
    agent_id: Mapped[int | None] = mapped_column(Id, ForeignKey("agents.id"))
    org_id: Mapped[int] = mapped_column(Id, ForeignKey("organizations.id"), nullable=False)
    subject_type: Mapped[str] = mapped_column(String(16), nullable=False)  # vehicle | property | person
    vehicle_plate: Mapped[str | None] = mapped_column(String(16))
    vehicle_model: Mapped[str | None] = mapped_column(String(32))
    vehicle_value: Mapped[Decimal | None] = mapped_column(Money)
    vehicle_first_registered: Mapped[date | None] = mapped_column(Date)
    property_address: Mapped[str | None] = mapped_column(String(128))
    sum_insured: Mapped[Decimal] = mapped_column(Money, nullable=False)
    premium: Mapped[Decimal] = mapped_column(Money, nullable=False)
    payment_mode: Mapped[str] = mapped_column(String(16), nullable=False)  # single | annual | quarterly | monthly
    start_date: Mapped[date] = mapped_column(Date, nullable=False)
    end_date: Mapped[date] = mapped_column(Date, nullable=False, index=True)  # renewal windows
    # quoted | pending_payment | in_force | lapsed | surrendered | expired
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    renewal_of: Mapped[int | None] = mapped_column(Id, ForeignKey("policies.id"))
    issued_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Claim(Audited, Base):
    """Claims with the time of every status transition (for the 3/5 working-day SLA)."""

    __tablename__ = "claims"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    claim_no: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    policy_id: Mapped[int] = mapped_column(Id, ForeignKey("policies.id"), nullable=False, index=True)
    customer_id: Mapped[int] = mapped_column(Id, ForeignKey("customers.id"), nullable=False)
    incident_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    incident_province: Mapped[str] = mapped_column(String(16), nullable=False)
    incident_city: Mapped[str] = mapped_column(String(32), nullable=False)
    incident_type: Mapped[str] = mapped_column(String(24), nullable=False)
    reported_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    amount_claimed: Mapped[Decimal] = mapped_column(Money, nullable=False)
    amount_approved: Mapped[Decimal | None] = mapped_column(Money)
    amount_paid: Mapped[Decimal | None] = mapped_column(Money)
    # submitted | under_review | docs_requested | approved | rejected | paying | paid
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    submitted_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    under_review_at: Mapped[datetime | None] = mapped_column(Timestamp)
    docs_requested_at: Mapped[datetime | None] = mapped_column(Timestamp)
    approved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    rejected_at: Mapped[datetime | None] = mapped_column(Timestamp)
    paying_at: Mapped[datetime | None] = mapped_column(Timestamp)
    paid_at: Mapped[datetime | None] = mapped_column(Timestamp)

    # The serving API's reads: a customer's claims newest first, claims by status oldest first (at risk).
    __table_args__ = (
        Index("ix_claims_customer_id_submitted_at", "customer_id", "submitted_at"),
        Index("ix_claims_status_submitted_at", "status", "submitted_at"),
    )


class SalesRecording(Audited, Base):
    """Sales dual recordings (双录): one ticket per recorded sale, with review and QC outcome."""

    __tablename__ = "sales_recordings"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    ticket_no: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    policy_id: Mapped[int] = mapped_column(Id, ForeignKey("policies.id"), nullable=False, index=True)
    agent_id: Mapped[int] = mapped_column(Id, ForeignKey("agents.id"), nullable=False)
    org_id: Mapped[int] = mapped_column(Id, ForeignKey("organizations.id"), nullable=False)
    product_id: Mapped[int] = mapped_column(Id, ForeignKey("products.id"), nullable=False)
    customer_id: Mapped[int] = mapped_column(Id, ForeignKey("customers.id"), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    duration_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    file_uri: Mapped[str] = mapped_column(String(160), nullable=False)
    file_size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    checksum_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    is_encrypted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    review_status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending | rejected | completed
    reviewer_code: Mapped[str | None] = mapped_column(String(16))
    review_comment: Mapped[str | None] = mapped_column(String(255))
    reviewed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    qc_sampled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    qc_result: Mapped[str | None] = mapped_column(String(8))  # pass | fail


class Consent(Audited, Base):
    """Per-channel marketing consent, the latest decision per customer and channel."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Id, ForeignKey("customers.id"), nullable=False, index=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # app_push | sms | wechat | email | phone
    status: Mapped[str] = mapped_column(String(8), nullable=False)  # opt_in | opt_out
    decided_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # app | wechat | agent | call_center | web


class Complaint(Audited, Base):
    """Customer complaints (投诉); an open one blocks marketing to that customer."""

    __tablename__ = "complaints"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    complaint_no: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    customer_id: Mapped[int] = mapped_column(Id, ForeignKey("customers.id"), nullable=False, index=True)
    policy_id: Mapped[int | None] = mapped_column(Id, ForeignKey("policies.id"))
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # hotline | app | wechat | branch | regulator
    category: Mapped[str] = mapped_column(String(16), nullable=False)  # claim | sales | service | billing | product
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # open | in_progress | resolved | closed
    opened_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp)


class WorldClock(Base):
    """The synthetic world's current day (generator bookkeeping, not an insurer table; never synced)."""

    __tablename__ = "world_clock"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    current_date: Mapped[date] = mapped_column(Date, nullable=False)
    seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    next_ids: Mapped[str] = mapped_column(String(512), nullable=False)  # JSON: next id per table


SOURCE_TABLES = [
    "organizations",
    "agents",
    "customers",
    "products",
    "policies",
    "claims",
    "sales_recordings",
    "consents",
    "complaints",
]


# Tables the serving API owns in the same database (accounts, audit log, idempotency keys): registered on
# the same metadata so migrations and their test see one schema.
from mo.oltp import api_tables  # noqa: E402, F401
