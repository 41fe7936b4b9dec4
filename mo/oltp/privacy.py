"""The customer's say over their data: consent evidence, contact preferences, erasure requests.

The synced ``consents`` table (a source contract) keeps what the lake has always read: the latest
*marketing* decision per customer and channel. Everything the API learns beyond that lives here, in tables
the sync never reads (none is in ``SOURCE_TABLES``):

- ``consent_evidence``: every grant and withdrawal, per channel and purpose, with the consent text version
  shown, where the customer decided and who recorded it. Append-only (the migration's triggers refuse
  UPDATE and DELETE), so the proof that a customer agreed, or withdrew, cannot be rewritten. The latest
  row per (customer, channel, purpose='service') is the current service consent.
- ``contact_preferences``: push frequency and quiet hours, one row per customer, with a version that grows
  on every change (the hot record in Redis keeps only newer versions).
- ``complaint_handling``: a complaint's summary, assignee and resolution (the synced row keeps status);
- ``erasure_requests``: each erasure, what was erased, what was kept under legal hold and why. The lake's
  sync reads it to drop an erased customer's clear PII (it is the one table here the platform reads).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mo.oltp.models import Base, Id, Timestamp

CHANNELS = ("app_push", "sms", "wechat", "email", "phone")
PURPOSES = ("marketing", "service")
CONSENT_SOURCES = ("app", "wechat", "agent", "call_center", "web")
# What the evidence row was recorded for: the customer's own decision, or the erasure that withdrew it.
EVIDENCE_REASONS = ("customer", "erasure")


class ConsentEvidence(Base):
    """One grant or withdrawal as the customer made it. Append-only."""

    __tablename__ = "consent_evidence"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)  # also the decision's version
    customer_id: Mapped[int] = mapped_column(Id, nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # app_push | sms | wechat | email | phone
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)  # marketing | service
    status: Mapped[str] = mapped_column(String(8), nullable=False)  # opt_in | opt_out
    text_version: Mapped[str] = mapped_column(String(32), nullable=False)  # the consent text shown
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # app | wechat | agent | call_center | web
    reason: Mapped[str] = mapped_column(String(16), nullable=False)  # customer | erasure
    decided_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    actor: Mapped[str] = mapped_column(String(80), nullable=False)  # who recorded it (user:/client:)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (Index("ix_consent_evidence_customer", "customer_id", "channel", "purpose", "id"),)


class ContactPreference(Base):
    """How often and when a customer may be contacted: push frequency and quiet hours in their time zone."""

    __tablename__ = "contact_preferences"
    customer_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    max_push_per_week: Mapped[int | None] = mapped_column(Integer)  # None: no limit chosen
    quiet_start: Mapped[str | None] = mapped_column(String(5))  # HH:MM local time; None: no quiet hours
    quiet_end: Mapped[str | None] = mapped_column(String(5))  # HH:MM local time (may be before start: overnight)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False)  # IANA, e.g. Asia/Shanghai
    version: Mapped[int] = mapped_column(Integer, nullable=False)  # +1 on every change
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    updated_by: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class ErasureRequest(Base):
    """A customer's erasure request, carried out: what was erased, what was kept and why (JSON lists)."""

    __tablename__ = "erasure_requests"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    request_no: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)  # uuid, in the event
    customer_id: Mapped[int] = mapped_column(Id, nullable=False, index=True)
    basis: Mapped[str] = mapped_column(String(32), nullable=False)  # customer_request | regulator_order | ...
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # completed
    erased: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: [{"category", "detail"}]
    kept: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: [{"category", "reason"}]
    requested_by: Mapped[str] = mapped_column(String(80), nullable=False)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ComplaintHandling(Base):
    """Who handles a complaint and how it was resolved: the API's working data beside the synced
    ``complaints`` row (whose contract has no room for it). Free text is stored as given, never interpreted."""

    __tablename__ = "complaint_handling"
    complaint_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    summary: Mapped[str | None] = mapped_column(String(1000))  # the customer's words, as filed
    assigned_to: Mapped[str | None] = mapped_column(String(80))
    assigned_at: Mapped[datetime | None] = mapped_column(Timestamp)
    resolution: Mapped[str | None] = mapped_column(String(1000))
    resolved_by: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


PRIVACY_TABLES = ["consent_evidence", "contact_preferences", "erasure_requests", "complaint_handling"]


def erased_customer_ids(source_url: str) -> list[int]:
    """Customers whose erasure was completed, read from the source database at ``source_url``.

    None for a source that predates erasures (no ``erasure_requests`` table) or an embedded SQLite source
    that does not exist yet (nothing to read, and nothing is created by asking)."""
    from pathlib import Path

    from sqlalchemy import inspect, select

    from mo.oltp.db import make_engine, normalise_url

    url = normalise_url(source_url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not Path(path).exists():
            return []
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("erasure_requests"):
            return []
        table = ErasureRequest.__table__
        with engine.connect() as conn:
            rows = conn.execute(select(table.c.customer_id).where(table.c.status == "completed").distinct())
            return sorted(int(cid) for (cid,) in rows)
    finally:
        engine.dispose()
