"""Claim data only the serving API keeps: documents attached to a claim and every status change of a claim.

They live in the core systems' database beside ``claims`` so that a transition, its history row, its audit
entry and its outbox event commit together. Neither is a synced source table (``SOURCE_TABLES``): the lake
learns of documents and transitions from the ``claim_document_attached`` and ``claim_status_changed`` events,
and ``claims`` itself (synced) keeps the time each status was first reached.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from mo.oltp.models import Base, Id, Money, Timestamp


class ClaimDocument(Base):
    """A file attached to a claim; the bytes are in the document store under their SHA-256."""

    __tablename__ = "claim_documents"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)  # uuid4, the public id
    claim_id: Mapped[int] = mapped_column(Id, ForeignKey("claims.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(24), nullable=False)  # what the document is (loss report, invoice, ...)
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)  # as uploaded, stored verbatim
    content_type: Mapped[str] = mapped_column(String(32), nullable=False)  # detected from the content
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)  # the content's address in the store
    uploaded_by: Mapped[str] = mapped_column(String(80), nullable=False)  # principal subject
    uploaded_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (Index("ix_claim_documents_claim_id", "claim_id", "id"),)


class ClaimStatusHistory(Base):
    """One status change of a claim: from, to, who, when, why (the filing itself has no from status)."""

    __tablename__ = "claim_status_history"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    claim_id: Mapped[int] = mapped_column(Id, ForeignKey("claims.id"), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16), nullable=False)
    changed_by: Mapped[str] = mapped_column(String(80), nullable=False)  # principal subject
    changed_by_role: Mapped[str] = mapped_column(String(24), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))  # stored verbatim
    amount: Mapped[Decimal | None] = mapped_column(Money)  # amount approved or paid by this change

    __table_args__ = (Index("ix_claim_status_history_claim_id", "claim_id", "id"),)


CLAIM_API_TABLES = ["claim_documents", "claim_status_history"]
