"""Channel workers: consume ``<prefix>.sends``, deliver each message through its provider exactly once, and
record what happened in ``contact_deliveries``.

Per message: skip it if it already has a final state (sent, failed, dead_letter); resolve the recipient's address
from the customers table now (never from the message); append ``queued`` before calling the provider; call it
with the message id as the provider's client message id; append ``sent`` (the provider's message id) or
``failed`` (a permanent refusal, with the provider's code). Retryable errors (5xx, timeouts, unreachable,
frequency limits) are retried with exponential backoff and jitter; after ``MO_CHANNEL_MAX_ATTEMPTS`` the message
is appended ``dead_letter`` with the reason and published to ``<prefix>.sends.dead``.

Exactly once: a message found ``queued`` without a final state was being sent when a worker died; the provider
is asked (its query endpoint) before anything is sent again, and the provider also drops a repeated client
message id. Offsets are committed after the batch is recorded, so a killed worker's batch is delivered again
and the ledger turns the repeats into skips.

Rate limit: a token bucket per provider in the worker process (``MO_CHANNEL_RATE_PER_S``). It is per process:
with N workers on one channel give each 1/N of the provider's limit. Consumer groups: ``<prefix>.channels.<C>``
for ``--channel C``, ``<prefix>.channels.all`` without; run either per-channel workers or the all-channel one.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from mo.channels.adapters import PERMANENT, SENT, Adapter, SendResult, make_adapter
from mo.channels.messages import CHANNELS, check_send, dead_topic, encode, send_producer, sends_topic
from mo.config import Settings
from mo.errors import ContractViolation
from mo.oltp.campaign_tables import Delivery
from mo.oltp.models import Customer

log = logging.getLogger(__name__)
DELIVERIES = cast(Table, Delivery.__table__)
CUSTOMERS = Customer.__table__
FINAL = {"sent", "failed", "dead_letter"}
SETTLE_EVERY_S = 30.0


class TokenBucket:
    """``rate`` tokens a second, a burst of at most one second's worth; ``acquire`` waits for a token."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.capacity, self.clock = rate, max(1.0, rate), clock
        self.tokens, self.last = self.capacity, clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a token; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return waited
                pause = (1 - self.tokens) / self.rate
            time.sleep(pause)
            waited += pause


@dataclass
class WorkerStats:
    sent: int = 0
    failed: int = 0
    dead_letter: int = 0
    skipped: int = 0
    recovered: int = 0
    invalid: int = 0
    retries: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k != "outcomes"}


def utcnow():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


def states_of(engine: Engine, message_id: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(DELIVERIES.c.state).where(DELIVERIES.c.message_id == message_id)).scalars())


def append_state(
    engine: Engine,
    message: dict[str, Any],
    state: str,
    *,
    provider: str | None = None,
    provider_message_id: str | None = None,
    detail: str | None = None,
) -> bool:
    """Append one delivery state; False if the message already has it (the unique key refused the repeat)."""
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(DELIVERIES).values(
                    message_id=message["message_id"],
                    ledger_id=message["ledger_id"],
                    customer_id=message["customer_id"],
                    state=state,
                    provider=provider,
                    provider_message_id=provider_message_id,
                    detail=detail and detail[:1000],
                    at=utcnow(),
                )
            )
        return True
    except IntegrityError:
        return False


def record_sent(engine: Engine, message: dict[str, Any], *, provider: str, provider_message_id: str | None,
                detail: str) -> None:  # fmt: skip
    """Append ``sent`` (committed), then apply any receipt that overtook it (mo.channels.receipts: the webhook
    commits its early receipt before looking for this row, so one of the two sides always sees the other)."""
    append_state(engine, message, "sent", provider=provider, provider_message_id=provider_message_id, detail=detail)
    settle_sent(engine, provider, message["message_id"])


def settle_sent(engine: Engine, provider: str, message_id: str) -> int:
    """Apply the early receipts of a message now recorded sent; how many were applied."""
    from mo.channels import receipts

    with engine.begin() as conn:
        sent = receipts.find_sent(conn, provider, message_id)
        return receipts.settle(conn, sent) if sent is not None else 0


def resolve_address(engine: Engine, customer_id: int, column: str) -> str | None:
    """The customer's address for the channel as the source holds it now; None if absent or the customer is gone."""
    with engine.connect() as conn:
        row = conn.execute(
            select(CUSTOMERS.c[column], CUSTOMERS.c.deleted_at).where(CUSTOMERS.c.id == customer_id)
        ).first()
    if row is None or row.deleted_at is not None:
        return None
    return row[0] or None


class ChannelWorker:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        channel: str | None = None,
        adapters: dict[str, Adapter] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"unknown channel '{channel}'; expected one of {', '.join(CHANNELS)}")
        self.settings, self.engine, self.channel, self.sleep = settings, engine, channel, sleep
        self.adapters = adapters or {}
        self.buckets: dict[str, TokenBucket] = {}
        self.stats = WorkerStats()
        self._dead_producer: Any = None

    def adapter(self, channel: str) -> Adapter:
        if channel not in self.adapters:
            self.adapters[channel] = make_adapter(channel, self.settings)
        return self.adapters[channel]

    def bucket(self, channel: str) -> TokenBucket:
        if channel not in self.buckets:
            self.buckets[channel] = TokenBucket(self.settings.channel_rate_per_s)
        return self.buckets[channel]

    def backoff(self, attempt: int) -> float:
        base = min(self.settings.channel_backoff_max_s, self.settings.channel_backoff_s * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: half to the whole of the step

    # ---- one message --------------------------------------------------------------------------------
    def process(self, message: dict[str, Any]) -> str:
        """Deliver one (valid) send message; returns what happened: sent, failed, dead_letter, skipped, recovered."""
        outcome = self._process(message)
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        self.stats.outcomes[message["message_id"]] = outcome
        return outcome

    def _process(self, message: dict[str, Any]) -> str:
        channel, message_id = message["channel"], message["message_id"]
        states = states_of(self.engine, message_id)
        if states & FINAL:
            return "skipped"
        adapter = self.adapter(channel)
        address = resolve_address(self.engine, message["customer_id"], adapter.address_field)
        if address is None:
            append_state(self.engine, message, "failed", provider=channel,
                         detail=f"no_address: customer has no {adapter.address_field} (or is erased)")  # fmt: skip
            return "failed"
        if "queued" in states or not append_state(self.engine, message, "queued", provider=channel):
            # A worker died between queued and its result: ask the provider before sending again.
            try:
                found = adapter.lookup(message_id, address)
            except Exception as exc:  # noqa: BLE001 - the provider's dedup on the client id still holds
                log.warning("lookup of %s at %s failed (%s); sending with the same client id", message_id, channel, exc)
                found = None
            if found:
                record_sent(self.engine, message, provider=channel, provider_message_id=found,
                            detail="found at the provider after a restart")  # fmt: skip
                return "recovered"
        last: SendResult | None = None
        attempts = self.settings.channel_max_attempts
        for attempt in range(1, attempts + 1):
            self.bucket(channel).acquire()
            result = adapter.send(message_id, address, message["payload"])
            if result.status == SENT:
                record_sent(self.engine, message, provider=channel, provider_message_id=result.provider_message_id,
                            detail=f"attempt {attempt}")  # fmt: skip
                return "sent"
            if result.status == PERMANENT:
                append_state(self.engine, message, "failed", provider=channel, detail=result.detail)
                return "failed"
            last = result
            log.info("%s attempt %d/%d at %s: %s", message_id, attempt, attempts, channel, result.detail)
            if attempt < attempts:
                self.stats.retries += 1
                self.sleep(self.backoff(attempt))
        reason = f"{attempts} attempts, last {last.detail if last else '?'}"
        append_state(self.engine, message, "dead_letter", provider=channel, detail=reason)
        self._dead_letter(message, reason)
        return "dead_letter"

    def _dead_letter(self, message: dict[str, Any], reason: str, raw: bytes | None = None) -> None:
        try:
            if self._dead_producer is None:
                self._dead_producer = send_producer(self.settings)
            value = (
                encode({"message": message, "reason": reason, "dead_at": utcnow().isoformat()}) if raw is None else raw
            )
            key = str(message.get("customer_id", "")).encode() if isinstance(message, dict) else None
            self._dead_producer.send(dead_topic(self.settings), key=key, value=value).get(timeout=30)
        except Exception as exc:  # noqa: BLE001 - the ledger row is the record; the topic is a copy for operators
            log.error("could not publish %s to the dead-letter topic: %s", message.get("message_id"), exc)

    def handle_raw(self, value: bytes) -> str:
        """A message as it came off the topic: invalid ones go to the dead-letter topic, nothing else happens."""
        try:
            message = json.loads(value)
            check_send(message)
        except (ValueError, ContractViolation) as exc:
            self.stats.invalid += 1
            log.error("invalid send message refused: %s", exc)
            self._dead_letter({}, f"contract: {exc}", raw=encode({"raw": value.decode("utf-8", "replace"),
                                                                   "reason": f"contract: {exc}"}))  # fmt: skip
            return "invalid"
        if self.channel is not None and message["channel"] != self.channel:
            return "other_channel"
        return self.process(message)

    # ---- the consumer loop --------------------------------------------------------------------------
    def consumer(self):  # type: ignore[no-untyped-def]
        from kafka import KafkaConsumer

        from mo.events.broker import require_reachable

        bootstrap = self.settings.resolved_kafka_bootstrap
        require_reachable(bootstrap, "the channel worker consumes the sends topic")
        return KafkaConsumer(
            sends_topic(self.settings),
            bootstrap_servers=bootstrap,
            group_id=f"{self.settings.kafka_topic_prefix}.channels.{self.channel or 'all'}",
            client_id=f"mo-channel-worker-{self.channel or 'all'}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=20,
            max_poll_interval_ms=10_000,  # also the group join wait on the embedded broker (see ENVIRONMENT notes)
            session_timeout_ms=10_000,
        )

    def run(self, *, once: bool = False, stop: threading.Event | None = None, idle_polls: int = 3,
            join_timeout_s: float = 60.0) -> WorkerStats:  # fmt: skip
        """Consume until stopped; with ``once``, until the topic has nothing more for this group."""
        from kafka.errors import CommitFailedError, KafkaError

        from mo.channels.receipts import settle_all

        stop = stop or threading.Event()
        consumer = self.consumer()
        empty, started = 0, time.monotonic()
        settled = started
        try:
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=500)
                records = [r for batch in batches.values() for r in batch]
                if not records:
                    if time.monotonic() - settled > SETTLE_EVERY_S:  # receipts a dead webhook process left early
                        settled = time.monotonic()
                        try:
                            settle_all(self.engine)
                        except Exception as exc:  # noqa: BLE001 - tried again at the next idle moment
                            log.warning("early receipts not settled: %s", exc)
                    if once and consumer.assignment():
                        empty += 1
                        if empty >= idle_polls:
                            break
                    elif once and time.monotonic() - started > join_timeout_s:
                        break
                    continue
                empty = 0
                for record in records:
                    self.handle_raw(record.value)
                try:
                    consumer.commit()
                except (CommitFailedError, KafkaError) as exc:  # redelivered later; the ledger skips repeats
                    log.warning("offset commit failed (%s); the batch will be seen again and skipped", exc)
        finally:
            consumer.close()
            if self._dead_producer is not None:
                self._dead_producer.close(timeout=5)
            for adapter in self.adapters.values():
                adapter.close()
        return self.stats
