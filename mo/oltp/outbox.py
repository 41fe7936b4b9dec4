"""The transactional outbox: business events written in the same database transaction as the business change.

An API write (a claim filed, a consent withdrawn) inserts its event into ``outbox`` through
:func:`add_event` on the caller's connection or session, inside the caller's transaction: the change and
its event commit together or not at all. The relay (:mod:`mo.events.relay`) later publishes unpublished
rows to Kafka in id order and marks them published, at least once; consumers drop repeats by event_id.

``outbox`` lives in the source database beside the tables the platform syncs, but it is not one of
them (not in ``SOURCE_TABLES``, no contract in schemas/sources/): the lake receives these events through
Kafka and the events ingest, never through the sync.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, Index, Integer, String, Table, Text, func, insert, select
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from mo.oltp.models import Base, Id, Timestamp

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    from mo.config import Settings

# The whole event as JSON text: MariaDB's TEXT stops at 64 KiB, MEDIUMTEXT at 16 MiB.
EventText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
# Kafka's default message.max.bytes is about 1 MB; a bigger event would be refused by the broker on every
# relay attempt and block its customer's later events, so it is refused here, before anything is written.
MAX_EVENT_BYTES = 900_000
LAST_ERROR_CHARS = 500


class OutboxEvent(Base):
    """One business event waiting for (or past) its publication to Kafka."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)  # publication order
    event_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    topic: Mapped[str] = mapped_column(String(200), nullable=False)
    partition_key: Mapped[str] = mapped_column(String(32), nullable=False)  # the customer id: one partition each
    payload: Mapped[str] = mapped_column(EventText, nullable=False)  # the whole event, exactly as published
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(Timestamp)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(LAST_ERROR_CHARS))

    __table_args__ = (
        # The relay's scan: unpublished rows in id order (published_at IS NULL is the leading equality).
        Index("ix_outbox_published_at_id", "published_at", "id"),
        # Its ordering check: a customer's unpublished rows another relay holds.
        Index("ix_outbox_partition_key_published_at", "partition_key", "published_at"),
    )


OUTBOX = cast(Table, OutboxEvent.__table__)  # the Core table, for the relay's bulk statements


def utc_now() -> datetime:
    """Naive UTC, as every timestamp in the source database."""
    return datetime.now(UTC).replace(tzinfo=None)


def format_occurred_at(moment: datetime) -> str:
    """``2026-12-06T07:00:00.123456Z``: the envelope's format (UTC, trailing Z). Naive means UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_event(
    event_type: str,
    *,
    customer_id: int,
    payload: dict[str, Any],
    source: str,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An event envelope: a fresh uuid4 event_id, occurred_at now (UTC, Z) unless given, the contract's version.

    Nothing is checked here; :func:`add_event` checks the whole event against its contract.
    """
    from mo.events.contracts import validators

    validator = validators().get(event_type)
    version = validator.schema["properties"]["schema_version"].get("const", 1) if validator else 1
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": version,
        "occurred_at": format_occurred_at(occurred_at or datetime.now(UTC)),
        "customer_id": customer_id,
        "source": source,
        "payload": payload,
    }


def add_event(conn_or_session: Connection | Session, event: dict[str, Any], *, settings: Settings | None = None) -> str:
    """Check the event against its contract and insert it into the outbox in the caller's transaction.

    Does not commit: the caller's commit publishes the business change and its event together, a
    rollback drops both. Raises ContractViolation (nothing written) for an event that breaks its
    contract in schemas/events/ or is too big for the broker. Returns the event_id.
    """
    from mo.config import get_settings
    from mo.errors import ContractViolation
    from mo.events.contracts import check_event, topic_for
    from mo.events.producer import encode_event

    check_event(event)
    text = encode_event(event).decode("utf-8")
    if len(text.encode("utf-8")) > MAX_EVENT_BYTES:
        raise ContractViolation(
            f"{event['event_type']} event {event['event_id']} is {len(text.encode('utf-8'))} bytes encoded; "
            f"the outbox takes at most {MAX_EVENT_BYTES}"
        )
    settings = settings or get_settings()
    conn_or_session.execute(
        insert(OUTBOX).values(
            event_id=event["event_id"],
            event_type=event["event_type"],
            topic=topic_for(settings, event["event_type"]),
            partition_key=str(int(event["customer_id"])),
            payload=text,
            created_at=utc_now(),
            attempts=0,
        )
    )
    return event["event_id"]


@dataclass(frozen=True)
class OutboxStatus:
    """What waits in the outbox: the API's metrics and `mo outbox status`."""

    pending: int
    oldest_pending_at: datetime | None  # naive UTC
    lag_seconds: float  # age of the oldest unpublished event; 0 when nothing waits
    max_attempts: int  # the most publication attempts any waiting event has had
    last_error: str | None  # the latest failure recorded on a waiting event

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "oldest_pending_at": self.oldest_pending_at.isoformat() + "Z" if self.oldest_pending_at else None,
            "lag_seconds": round(self.lag_seconds, 3),
            "max_attempts": self.max_attempts,
            "last_error": self.last_error,
        }


def outbox_status(bind: Engine | Connection | Session, *, now: datetime | None = None) -> OutboxStatus:
    """Pending count, oldest pending event and its age (the relay lag), from one indexed scan of waiting rows."""
    t = OUTBOX
    waiting = t.c.published_at.is_(None)
    summary = select(func.count(), func.min(t.c.created_at), func.coalesce(func.max(t.c.attempts), 0)).where(waiting)
    latest_error = select(t.c.last_error).where(waiting, t.c.last_error.is_not(None)).order_by(t.c.id.desc()).limit(1)

    def _read(conn) -> tuple[int, datetime | None, int, str | None]:
        pending, oldest, attempts = conn.execute(summary).one()
        error = conn.execute(latest_error).scalar_one_or_none() if attempts else None
        return int(pending), oldest, int(attempts), error

    if isinstance(bind, Engine):  # a short read of its own
        with bind.connect() as conn:
            pending, oldest, attempts, error = _read(conn)
    else:
        pending, oldest, attempts, error = _read(bind)
    lag = max(((now or utc_now()) - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return OutboxStatus(pending, oldest, lag, attempts, error)


def pending_count(bind: Engine | Connection | Session) -> int:
    """Events not yet published (a gauge for /metrics)."""
    return outbox_status(bind).pending


def lag_seconds(bind: Engine | Connection | Session) -> float:
    """Age in seconds of the oldest unpublished event, 0 when none waits (a gauge for /metrics)."""
    return outbox_status(bind).lag_seconds


def stored_event(row_payload: str) -> dict[str, Any]:
    """The event a row holds (its payload column is the whole event JSON)."""
    return json.loads(row_payload)
