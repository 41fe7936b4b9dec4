"""Tables the serving API owns in the core systems' database: accounts, the audit log, idempotency keys.

They live beside the business tables the API writes (claims, consents, complaints) so that a write, its
audit entry, its idempotency record and its outbox event commit in one transaction. None of them is a
synced source table (``SOURCE_TABLES``): the lake never reads accounts or the audit log.

The audit log is append-only: the migration installs triggers that refuse UPDATE and DELETE on every
engine, so not even a bug in the API (or a person with the API's login) can rewrite history.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mo.oltp.models import Base, Id, Timestamp


class StaffUser(Base):
    """A person who logs in with a password: service agents, claims handlers, marketers, approvers, admins."""

    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    display_name: Mapped[str] = mapped_column(String(64), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)  # argon2id, with its parameters
    role: Mapped[str] = mapped_column(String(24), nullable=False)
    # The organisation subtree the user works in (None: the whole company) and, for agents, the agent.
    org_id: Mapped[int | None] = mapped_column(Id)
    agent_id: Mapped[int | None] = mapped_column(Id)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(Timestamp)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class ApiClient(Base):
    """An application calling the API with OAuth2 client credentials (the insurer's app, the mini-program,
    an agent app bound to one agent)."""

    __tablename__ = "api_clients"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(24), nullable=False)
    org_id: Mapped[int | None] = mapped_column(Id)
    agent_id: Mapped[int | None] = mapped_column(Id)
    # Requests per minute; None: the service default.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class AuditEntry(Base):
    """Who did what to which customer, when, under which request, and how it ended. Append-only."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str] = mapped_column(String(80), nullable=False)  # user:<name> | client:<id> | anonymous
    role: Mapped[str | None] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(64), nullable=False)  # e.g. claims.submit, customers.read_pii
    resource: Mapped[str] = mapped_column(String(200), nullable=False)  # method and path
    customer_id: Mapped[int | None] = mapped_column(Id)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # ok | denied | invalid | conflict | error
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    detail: Mapped[str | None] = mapped_column(String(1000))

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_customer", "customer_id", "at"),
        Index("ix_audit_log_actor", "actor", "at"),
    )


class IdempotencyKey(Base):
    """The first answer to a POST with an ``Idempotency-Key``, stored in the write's own transaction."""

    __tablename__ = "idempotency_keys"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(80), nullable=False)
    key: Mapped[str] = mapped_column(String(128), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # method, path and body, SHA-256
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    response_body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)

    __table_args__ = (UniqueConstraint("actor", "key", name="uq_idempotency_keys_actor_key"),)


API_TABLES = ["staff_users", "api_clients", "audit_log", "idempotency_keys"]
