"""The outbox relay: publishes the business events the API wrote to ``outbox`` (mo.oltp.outbox) to Kafka.

One pass (:func:`relay_once`) claims the oldest unpublished rows, sends each row's stored JSON unchanged
to its topic keyed by customer id (acks=all, idempotent producer), waits for the broker's
acknowledgements, and only then marks the acknowledged rows published, in the same transaction that
claimed them. A relay killed between the acknowledgement and that commit leaves the rows unpublished:
the next pass sends them again with the same event_id (at least once; consumers drop repeats by event_id,
stg_events__events keeps one copy per event_id).

Several relays may run at once. On PostgreSQL and MariaDB a pass claims its rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` (READ COMMITTED, so MariaDB takes no gap locks that would stall the
API's inserts), so no row is published by two relays and none is skipped: a locked row is taken by its
holder or, if that relay dies, by the next pass after its transaction ends. A customer's events stay in id
order across relays: a pass holds back any row of a customer with an earlier unpublished row it does not
hold (another relay's), until that one is published. SQLite has one writer and no row locks: run one
relay there (a second would only send duplicates, never lose an event).

:func:`run_relay` repeats passes until stopped. While the broker (or the database) is down it backs off
exponentially up to ``max_backoff_s``, keeps the events in the outbox, and logs one warning line per
outage and one line when it is over.

Fault injection, for tests only: ``MO_FAULT_INJECT=after_outbox_publish`` makes the process exit with status
137 (os._exit, like a kill) after the broker acknowledged a pass's events and before they are marked
published. Leave it unset in every real deployment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, bindparam, func, inspect, select, update
from sqlalchemy.exc import DBAPIError

from mo.config import Settings
from mo.errors import BrokerUnavailable, MoError
from mo.oltp.outbox import LAST_ERROR_CHARS, OUTBOX, OutboxEvent, utc_now

log = logging.getLogger(__name__)

FAULT_ENV = "MO_FAULT_INJECT"
FAULT_AFTER_PUBLISH = "after_outbox_publish"
DEFAULT_BATCH_SIZE = 500
# Bounded waits, so a pass against a dead broker ends and the loop can back off instead of hanging.
DELIVERY_TIMEOUT_MS = 30_000
FLUSH_TIMEOUT_S = DELIVERY_TIMEOUT_MS / 1000 + 5


@dataclass(frozen=True)
class RelayResult:
    """What one pass did."""

    published: int  # acknowledged by the broker and marked published
    held_back: int  # claimed but left for later: an earlier event of the same customer is another relay's
    failed: int  # sent but not acknowledged: stay unpublished, attempts and last_error recorded
    error: str | None = None  # the first send failure, when any

    @property
    def claimed(self) -> int:
        return self.published + self.held_back + self.failed


@dataclass
class RelayStats:
    """Running totals of run_relay, readable while it runs (one writer: the relay's thread)."""

    passes: int = 0
    published: int = 0
    failed_passes: int = 0
    outages: int = 0
    in_outage: bool = False
    last_error: str | None = None
    started_at: float = field(default_factory=time.monotonic)


def relay_producer(settings: Settings):
    """A kafka-python producer for the relay: acks=all, idempotent, bounded waits. Raises BrokerUnavailable."""
    from mo.events.producer import _producer

    return _producer(
        settings,
        client_id="mo-outbox-relay",
        linger_ms=5,
        max_block_ms=10_000,
        delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
    )


def require_outbox(engine: Engine) -> None:
    """One-line error when the source database has no outbox table (migrations not applied)."""
    if not inspect(engine).has_table(OutboxEvent.__tablename__):
        raise MoError(
            f"no outbox table in the source database at {engine.url.render_as_string(hide_password=True)}: "
            "run `mo db migrate`"
        )


def _claim(conn, batch_size: int) -> list[Any]:
    t = OUTBOX
    query = (
        select(t.c.id, t.c.event_id, t.c.topic, t.c.partition_key, t.c.payload)
        .where(t.c.published_at.is_(None))
        .order_by(t.c.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)  # rendered on PostgreSQL and MariaDB; SQLite has one writer
    )
    return list(conn.execute(query))


def _first_foreign_ids(conn, rows: list[Any]) -> dict[str, int]:
    """Per customer in the batch: the lowest unpublished id this pass does not hold (another relay's)."""
    t = OUTBOX
    query = (
        select(t.c.partition_key, func.min(t.c.id))
        .where(
            t.c.published_at.is_(None),
            t.c.partition_key.in_(sorted({r.partition_key for r in rows})),
            t.c.id.not_in([r.id for r in rows]),
        )
        .group_by(t.c.partition_key)
    )
    return dict(conn.execute(query).tuples().all())


def _mark(conn, ids: list[int], *, published: bool, error: str | None = None) -> None:
    if not ids:
        return
    t = OUTBOX
    values: dict[str, Any] = {"attempts": t.c.attempts + 1}
    if published:
        values.update(published_at=utc_now(), last_error=None)
    else:
        values.update(last_error=(error or "not acknowledged")[:LAST_ERROR_CHARS])
    conn.execute(update(t).where(t.c.id.in_(bindparam("ids", expanding=True))).values(**values), {"ids": ids})


def _failure_text(exc: BaseException | None) -> str:
    if exc is None:
        return "not acknowledged"
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def relay_once(
    engine: Engine, settings: Settings, batch_size: int = DEFAULT_BATCH_SIZE, *, producer: Any = None
) -> RelayResult:
    """Publish up to ``batch_size`` of the oldest unpublished outbox rows; mark the acknowledged ones published.

    ``producer``: a kafka-python producer to reuse across passes (relay_producer); without one, a pass makes
    and closes its own. Raises BrokerUnavailable (nothing claimed) when no producer can reach the broker.
    """
    if batch_size < 1:
        raise MoError(f"outbox relay batch size must be at least 1, got {batch_size}")
    own_producer = producer is None
    if own_producer:
        producer = relay_producer(settings)
    try:
        return _pass(engine, producer, batch_size)
    finally:
        if own_producer:
            with contextlib.suppress(Exception):
                producer.close(timeout=5)


def _pass(engine: Engine, producer, batch_size: int) -> RelayResult:
    from kafka.errors import KafkaError

    conn = engine.connect()
    if engine.dialect.name != "sqlite":
        conn = conn.execution_options(isolation_level="READ COMMITTED")
    with conn, conn.begin():
        rows = _claim(conn, batch_size)
        if not rows:
            return RelayResult(0, 0, 0)
        first_foreign = _first_foreign_ids(conn, rows)
        sendable = [r for r in rows if r.id < first_foreign.get(r.partition_key, r.id + 1)]
        futures = []
        send_error: BaseException | None = None
        for row in sendable:
            try:
                future = producer.send(row.topic, key=row.partition_key.encode(), value=row.payload.encode("utf-8"))
            except KafkaError as exc:  # metadata unavailable within max_block_ms: the rest waits for the next pass
                send_error = exc
                break
            futures.append((row, future))
        with contextlib.suppress(KafkaError):
            producer.flush(timeout=FLUSH_TIMEOUT_S)
        acknowledged, failed = [], []
        for row, future in futures:
            if future.is_done and future.succeeded():
                acknowledged.append(row.id)
            else:
                failed.append(row.id)
                send_error = send_error or (future.exception if future.is_done else None)
        unsent = [r.id for r in sendable[len(futures) :]]
        if os.environ.get(FAULT_ENV) == FAULT_AFTER_PUBLISH and acknowledged:
            os._exit(137)  # tests only: killed after the broker acknowledged, before the rows are marked
        error = _failure_text(send_error) if failed or unsent else None
        _mark(conn, acknowledged, published=True)
        _mark(conn, failed + unsent, published=False, error=error)
    return RelayResult(len(acknowledged), len(rows) - len(sendable), len(failed) + len(unsent), error)


def run_relay(
    engine: Engine,
    settings: Settings,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    poll_interval_s: float = 0.5,
    max_backoff_s: float = 30.0,
    stop: threading.Event | None = None,
    stats: RelayStats | None = None,
) -> RelayStats:
    """Relay until ``stop`` is set: a pass right after a full batch, else one every ``poll_interval_s``.

    Never raises for a broker or database outage: it backs off (doubling from ``poll_interval_s`` up to
    ``max_backoff_s``), logs one warning when the outage starts and one line when it ends. ``stats`` is
    updated in place as it goes and returned.
    """
    stop = stop or threading.Event()
    stats = stats or RelayStats()
    require_outbox(engine)
    producer = None
    backoff = poll_interval_s
    outage_since = 0.0
    try:
        while not stop.is_set():
            stats.passes += 1
            try:
                if producer is None:
                    producer = relay_producer(settings)
                result = relay_once(engine, settings, batch_size, producer=producer)
                if result.failed:
                    raise BrokerUnavailable(
                        f"Kafka broker at {settings.resolved_kafka_bootstrap} did not acknowledge "
                        f"{result.failed} events: {result.error}"
                    )
            except (MoError, DBAPIError) as exc:
                if isinstance(exc, MoError) and not isinstance(exc, BrokerUnavailable):
                    raise
                stats.failed_passes += 1
                stats.last_error = _one_line(exc)
                if producer is not None:  # a fresh producer next time: a dead connection's state is not reused
                    with contextlib.suppress(Exception):
                        producer.close(timeout=1)
                    producer = None
                if not stats.in_outage:
                    stats.in_outage, stats.outages, outage_since = True, stats.outages + 1, time.monotonic()
                    log.warning(
                        "outbox relay: %s; events stay in the outbox, retrying with backoff up to %gs",
                        stats.last_error,
                        max_backoff_s,
                    )
                stop.wait(backoff)
                backoff = min(max(backoff * 2, poll_interval_s), max_backoff_s)
                continue
            if stats.in_outage:
                stats.in_outage = False
                log.warning("outbox relay: publishing again after %.0fs of outage", time.monotonic() - outage_since)
            backoff = poll_interval_s
            stats.published += result.published
            if result.claimed < batch_size or result.held_back:
                stop.wait(poll_interval_s)
    finally:
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=5)
    return stats


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError):
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        return f"source database error: {reason}"
    return str(exc).splitlines()[0]
