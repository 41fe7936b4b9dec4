"""Publishing events to Kafka: contract check first, then the topic the schema names, keyed by customer.

Keying by customer_id keeps one customer's events in one partition, so consumers see them in order.
The producer is idempotent (acks=all, retries, enable_idempotence): a retry after a lost ack does
not write the message twice.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from mo.config import Settings
from mo.errors import BrokerUnavailable, ContractViolation, MoError
from mo.events.broker import require_reachable
from mo.events.contracts import check_event, topic_for

FLUSH_TIMEOUT_S = 60


def _producer(settings: Settings, **overrides: Any):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    bootstrap = settings.resolved_kafka_bootstrap
    require_reachable(bootstrap, "cannot publish events")
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": "mo-events",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,  # fuller batches, fewer produce requests; invisible next to a publish loop
        "batch_size": 256 * 1024,
        "request_timeout_ms": 15_000,
        "bootstrap_timeout_ms": 10_000,
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"Kafka broker unreachable at {bootstrap}: cannot publish events ({type(exc).__name__})"
        ) from None


def encode_event(event: dict) -> bytes:
    """Compact UTF-8 JSON. NaN and Infinity pass JSON Schema's numeric checks but are not JSON: refused."""
    try:
        return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError:
        raise ContractViolation(
            f"{event.get('event_type')} violates its contract: NaN or Infinity is not valid JSON"
        ) from None


class EventPublisher:
    """Validates and sends events; call flush() to wait for the broker's acknowledgements."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = _producer(settings)
        self._failure: BaseException | None = None
        self.published = 0

    def _on_error(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc

    def publish(self, event: dict) -> None:
        """Send one event; raises ContractViolation (nothing is sent) if it breaks its JSON Schema."""
        check_event(event)
        value = encode_event(event)
        self._raise_failure()
        future = self._producer.send(
            topic_for(self.settings, event["event_type"]),
            key=str(event["customer_id"]).encode(),
            value=value,
        )
        future.add_errback(self._on_error)
        self.published += 1

    def _raise_failure(self) -> None:
        if self._failure is not None:
            exc, self._failure = self._failure, None
            raise MoError(
                f"publishing events to {self.settings.resolved_kafka_bootstrap} failed: {type(exc).__name__}: {exc}"
            )

    def flush(self) -> None:
        """Block until every sent event is acknowledged; raises if any send failed."""
        from kafka.errors import KafkaTimeoutError

        try:
            self._producer.flush(timeout=FLUSH_TIMEOUT_S)
        except KafkaTimeoutError:
            raise BrokerUnavailable(
                f"Kafka broker at {self.settings.resolved_kafka_bootstrap} did not acknowledge events "
                f"within {FLUSH_TIMEOUT_S}s"
            ) from None
        self._raise_failure()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=5)

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def publish_raw(settings: Settings, topic: str, value: bytes, key: bytes | None = None) -> None:
    """Send bytes as they are, with no contract check: for tests and replays of malformed messages."""
    producer = _producer(settings)
    try:
        producer.send(topic, key=key, value=value).get(timeout=FLUSH_TIMEOUT_S)
    finally:
        producer.close(timeout=5)
