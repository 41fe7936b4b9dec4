"""The send message (schemas/messages/send.schema.json) on Kafka topic ``<prefix>.sends``, keyed by customer.

The dispatcher calls :func:`produce_sends` with the send rows it decided; every row is checked against the
contract first, so one bad row sends nothing. The channel workers check each message again on receipt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mo.config import SCHEMAS_DIR, Settings, get_settings
from mo.errors import BrokerUnavailable, ContractViolation

SCHEMA_PATH = SCHEMAS_DIR / "messages" / "send.schema.json"
CHANNELS = ("sms", "wechat", "push", "coupon")
FLUSH_TIMEOUT_S = 30.0


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check_send(message: Any) -> None:
    """Raise ContractViolation naming the first problem (with its JSON pointer) if the message breaks the schema."""
    error = best_match(_validator().iter_errors(message))
    if error is not None:
        pointer = "/" + "/".join(str(p) for p in error.absolute_path)
        raise ContractViolation(f"send message breaks send.schema.json at {pointer}: {error.message}")


def sends_topic(settings: Settings) -> str:
    return f"{settings.kafka_topic_prefix}.sends"


def dead_topic(settings: Settings) -> str:
    return f"{settings.kafka_topic_prefix}.sends.dead"


def new_send(
    *,
    ledger_id: int,
    touch_key: str,
    customer_id: int,
    channel: str,
    payload: dict[str, Any],
    campaign_id: int | None = None,
    purpose: str = "marketing",
    message_id: str | None = None,
) -> dict[str, Any]:
    """A send message with a fresh message id (the ledger row's message_id, when it has one, must be passed)."""
    return {
        "message_id": message_id or str(uuid.uuid4()),
        "ledger_id": ledger_id,
        "touch_key": touch_key,
        "customer_id": customer_id,
        "campaign_id": campaign_id,
        "channel": channel,
        "purpose": purpose,
        "payload": payload,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def send_producer(settings: Settings | None = None):
    """A kafka-python producer as the project uses it: acks=all, idempotent, bounded waits."""
    from mo.events.producer import _producer

    return _producer(settings or get_settings(), client_id="mo-sends", linger_ms=5, max_block_ms=10_000)


def produce_sends(producer, rows: Iterable[dict[str, Any]], settings: Settings | None = None) -> int:
    """Publish send messages keyed by customer id (one customer's sends stay in order on one partition) and wait
    for the broker's acknowledgement. Every row is checked first: a bad row raises and nothing is sent."""
    from kafka.errors import KafkaError, KafkaTimeoutError

    settings = settings or get_settings()
    rows = list(rows)
    for row in rows:
        check_send(row)
    topic = sends_topic(settings)
    futures = [producer.send(topic, key=str(r["customer_id"]).encode(), value=encode(r)) for r in rows]
    try:
        producer.flush(timeout=FLUSH_TIMEOUT_S)
        for future in futures:
            future.get(timeout=FLUSH_TIMEOUT_S)
    except (KafkaTimeoutError, KafkaError) as exc:
        raise BrokerUnavailable(f"sends not acknowledged by {settings.resolved_kafka_bootstrap}: {exc}") from None
    return len(rows)
