"""Tables of the campaign path in the core database: campaigns, their audiences, the contact ledger, delivery
states and durable holdouts.

They live beside the API's other tables (audit_log, idempotency_keys, outbox, consent_evidence) so that a
campaign change, its audit entry and its outbox event commit in one transaction, and so that the send
decision reads consent evidence, open claims and complaints from the same database it writes the ledger to.

- ``campaigns``: one row per campaign, its current state (``status``, ``version`` for optimistic locking);
  the channels with their templates and the schedule are JSON documents validated by the API.
- ``campaign_events``: every lifecycle change (draft -> submitted -> approved | rejected -> scheduled ->
  running -> completed; paused, resumed, cancelled), who made it and why. Append-only.
- ``campaign_occurrences``: one row per run of a campaign (a one-off campaign has occurrence 1, a recurring
  one a row per due time), with the published refresh its audience was frozen from.
- ``campaign_audience``: the frozen audience of an occurrence, each member with the reason it matched.
- ``contact_ledger``: every decision about an intended touch, from any source (campaign, journey, service
  notice), with its reason and the rule results at decision time. Append-only: a deferred touch that is
  decided again later gets a new row (``attempt`` + 1). A touch (``touch_key``) has at most one *final*
  decision (send or suppress): ``final_key`` holds the touch key on final rows and is unique, NULL on
  deferrals, so two dispatchers racing over the same touch cannot both decide it.
- ``contact_deliveries``: what happened to a sent touch (queued, sent, delivered, failed, opened, clicked,
  dead_letter), one row per (message, state), from the channel workers, provider receipts and tracked links.
  Append-only; a replayed receipt is refused by the unique key, not recorded twice.
- ``holdout_assignments``: whether a customer is held out of a product line's marketing for a renewal
  cycle; assigned once, deterministically, and then read, never recomputed.
- ``early_receipts``: provider receipts that arrived before the worker recorded the message ``sent`` (WeChat's
  TEMPLATESENDJOBFINISH names only the MsgID the worker learns from the send's answer; an SMS report can overtake
  the worker's write). Kept as received and applied once the ``sent`` row exists (mo/channels/receipts.py).
  Append-only: whether one was applied is read from ``contact_deliveries``.
- ``dispatch_leases``: the lease that lets one dispatcher decide at a time (contact caps are exact only then).
- ``short_links``: the short codes of tracked links in SMS texts (a provider caps a template variable at 35
  characters, too short for a signed token): code -> (message, target URL, expiry), redeemed by ``GET /v1/t/{code}``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mo.oltp.models import Base, Id, Timestamp

CAMPAIGN_STATUSES = (
    "draft",
    "submitted",
    "approved",
    "rejected",
    "scheduled",
    "running",
    "paused",
    "completed",
    "cancelled",
)
OBJECTIVES = ("acquisition", "cross_sell", "upsell", "renewal", "retention", "activation", "service")
OFFER_TYPES = ("product", "service", "coupon")
SCHEDULE_KINDS = ("now", "at", "recurring")
TOUCH_SOURCES = ("campaign", "journey", "service")
DECISIONS = ("send", "suppress", "defer")
DELIVERY_STATES = ("queued", "sent", "delivered", "failed", "opened", "clicked", "dead_letter")
APPEND_ONLY_TABLES = ("campaign_events", "contact_ledger", "contact_deliveries")


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    campaign_code: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    objective: Mapped[str] = mapped_column(String(24), nullable=False)  # OBJECTIVES
    product_line: Mapped[str] = mapped_column(String(16), nullable=False)  # auto | property | accident | health | life
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)  # marketing | service
    offer_type: Mapped[str] = mapped_column(String(16), nullable=False)  # OFFER_TYPES
    offer_product_code: Mapped[str | None] = mapped_column(String(16))  # the catalogue's product, for product offers
    offer_detail: Mapped[str | None] = mapped_column(Text)  # JSON: coupon template, service description
    segment_id: Mapped[str] = mapped_column(String(64), nullable=False)
    segment_version: Mapped[int | None] = mapped_column(Integer)  # None until submitted: then pinned
    channels: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: [{"channel", "template": {...}}] by preference
    schedule: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: {"kind": now|at|recurring, "start_at", ...}
    priority: Mapped[int] = mapped_column(Integer, nullable=False)  # higher wins a contested contact slot
    holdout_share: Mapped[Decimal] = mapped_column(Numeric(5, 4), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # CAMPAIGN_STATUSES
    author: Mapped[str] = mapped_column(String(80), nullable=False)  # user:<name>
    approver: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime | None] = mapped_column(Timestamp)  # approval or rejection
    decision_note: Mapped[str | None] = mapped_column(String(1000))
    next_run_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)  # the dispatcher's due time
    version: Mapped[int] = mapped_column(Integer, nullable=False)  # +1 on every change (optimistic locking)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (Index("ix_campaigns_status", "status", "next_run_at"),)


class CampaignEvent(Base):
    """A lifecycle change of a campaign. Append-only."""

    __tablename__ = "campaign_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(Id, nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    role: Mapped[str | None] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(String(1000))
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (Index("ix_campaign_events_campaign", "campaign_id", "id"),)


class CampaignOccurrence(Base):
    """One run of a campaign: its due time, the refresh its audience was frozen from, how far it got."""

    __tablename__ = "campaign_occurrences"
    campaign_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    occurrence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    due_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    refresh_id: Mapped[str | None] = mapped_column(String(64))  # the published refresh of the snapshot
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # snapshotting | deciding | dispatched | done
    audience: Mapped[int | None] = mapped_column(Integer)
    produced_to: Mapped[int | None] = mapped_column(Id)  # highest ledger id whose send reached Kafka
    started_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


class CampaignAudience(Base):
    """The frozen audience of an occurrence, with each member's reason (the matched clauses, JSON)."""

    __tablename__ = "campaign_audience"
    campaign_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    occurrence: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    reason: Mapped[str | None] = mapped_column(Text)


class LedgerEntry(Base):
    """One decision about an intended touch. Append-only."""

    __tablename__ = "contact_ledger"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    touch_key: Mapped[str] = mapped_column(String(96), nullable=False)  # campaign:<id>:<occurrence>:<customer>
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)  # 1, then +1 per re-decision of a deferral
    final_key: Mapped[str | None] = mapped_column(String(96), unique=True)  # touch_key on send/suppress rows
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # TOUCH_SOURCES
    campaign_id: Mapped[int | None] = mapped_column(Id)
    occurrence: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(Id, nullable=False)
    channel: Mapped[str | None] = mapped_column(String(16))  # the channel chosen (None when suppressed before)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)  # marketing | service
    product_line: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, nullable=False)
    decision: Mapped[str] = mapped_column(String(8), nullable=False)  # send | suppress | defer
    reason: Mapped[str] = mapped_column(String(32), nullable=False)  # ok, or the first rule that stopped it
    detail: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: every rule's result, evidence versions
    not_before: Mapped[datetime | None] = mapped_column(Timestamp)  # a deferral: decide again from then
    message_id: Mapped[str | None] = mapped_column(String(36), unique=True)  # send rows: the message's id
    decided_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (
        UniqueConstraint("touch_key", "attempt", name="uq_contact_ledger_touch_attempt"),
        Index("ix_contact_ledger_customer", "customer_id", "decided_at"),
        Index("ix_contact_ledger_campaign", "campaign_id", "occurrence"),
    )


class Delivery(Base):
    """What happened to a sent touch, one row per (message, state). Append-only."""

    __tablename__ = "contact_deliveries"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(36), nullable=False)
    ledger_id: Mapped[int] = mapped_column(Id, nullable=False)
    customer_id: Mapped[int] = mapped_column(Id, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # DELIVERY_STATES
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(1000))  # error code and message, receipt fields
    at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (
        UniqueConstraint("message_id", "state", name="uq_contact_deliveries_message_state"),
        Index("ix_contact_deliveries_at", "at"),
        Index("ix_contact_deliveries_provider_message", "provider", "provider_message_id"),  # WeChat receipts
    )


class HoldoutAssignment(Base):
    """Whether a customer is held out of a product line's marketing for one renewal cycle. Assigned once."""

    __tablename__ = "holdout_assignments"
    product_line: Mapped[str] = mapped_column(String(16), primary_key=True)
    cycle: Mapped[str] = mapped_column(String(16), primary_key=True)  # the renewal cycle, e.g. 2026
    customer_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    held_out: Mapped[bool] = mapped_column(Boolean, nullable=False)
    share: Mapped[Decimal] = mapped_column(Numeric(5, 4), nullable=False)  # the share in force when assigned
    bucket: Mapped[int] = mapped_column(Integer, nullable=False)  # 0..9999 from the keyed hash
    assigned_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class EarlyReceipt(Base):
    """A delivery receipt received before its message was recorded sent; applied when it is. Append-only."""

    __tablename__ = "early_receipts"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    message_id: Mapped[str | None] = mapped_column(String(36))  # the client message id, when the receipt names it
    provider_message_id: Mapped[str | None] = mapped_column(String(64))  # WeChat's MsgID otherwise
    delivered: Mapped[bool] = mapped_column(Boolean, nullable=False)
    detail: Mapped[str | None] = mapped_column(String(1000))
    received_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (
        Index("ix_early_receipts_message", "message_id"),
        Index("ix_early_receipts_provider_message", "provider", "provider_message_id"),
        Index("ix_early_receipts_received_at", "received_at"),
    )


class ShortLink(Base):
    """A tracked link's short code (SMS): the message it was sent in, its target and its expiry."""

    __tablename__ = "short_links"
    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), nullable=False)
    url: Mapped[str] = mapped_column(String(1000), nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (Index("ix_short_links_message", "message_id"),)


class DispatcherLease(Base):
    """The one-dispatcher lease: which dispatcher may decide, until when (renewed every round and chunk)."""

    __tablename__ = "dispatch_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


CAMPAIGN_TABLES = [
    "campaigns",
    "campaign_events",
    "campaign_occurrences",
    "campaign_audience",
    "contact_ledger",
    "contact_deliveries",
    "holdout_assignments",
]
