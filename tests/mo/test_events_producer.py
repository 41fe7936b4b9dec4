"""EventPublisher: contract check before sending, topic from the schema, key = customer_id."""

from __future__ import annotations

import json

import pytest

from mo.errors import ContractViolation
from mo.events.contracts import topic_kind
from mo.events.producer import EventPublisher, publish_raw
from mo.events.samples import sample_event, sample_stream

pytestmark = pytest.mark.kafka


def _read_all(settings, topic: str, expected: int, timeout_s: float = 15.0) -> list:
    """Every message of the topic, by explicit assignment (no group join to wait for)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.resolved_kafka_bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        messages: list = []
        deadline = time.monotonic() + timeout_s
        while len(messages) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                messages.extend(batch)
        return messages
    finally:
        consumer.close()


def test_publish_routes_by_schema_topic_and_keys_by_customer(kafka_settings):
    events = sample_stream(45)
    with EventPublisher(kafka_settings) as publisher:
        for event in events:
            publisher.publish(event)
    prefix = kafka_settings.kafka_topic_prefix
    business = [e for e in events if topic_kind(e["event_type"]) == "business"]
    assert len(business) > len(events) // 3
    got_business = _read_all(kafka_settings, f"{prefix}.business", len(business))
    got_behaviour = _read_all(kafka_settings, f"{prefix}.behaviour", len(events) - len(business))
    assert sorted(json.loads(m.value)["event_id"] for m in got_business) == sorted(e["event_id"] for e in business)
    assert len(got_behaviour) == len(events) - len(business)
    for message in got_business + got_behaviour:
        event = json.loads(message.value)
        assert message.key == str(event["customer_id"]).encode()
        assert event == next(e for e in events if e["event_id"] == event["event_id"])


def test_same_customer_lands_in_one_partition(kafka_settings):
    events = [sample_event("app_page_view", seq, customer_id=42) for seq in range(20)]
    with EventPublisher(kafka_settings) as publisher:
        for event in events:
            publisher.publish(event)
    messages = _read_all(kafka_settings, f"{kafka_settings.kafka_topic_prefix}.behaviour", 20)
    assert len(messages) == 20
    assert len({m.partition for m in messages}) == 1
    # In order within the partition, as produced.
    assert [json.loads(m.value)["event_id"] for m in messages] == [e["event_id"] for e in events]


def test_invalid_event_is_refused_and_nothing_is_sent(kafka_settings):
    bad = sample_event("app_page_view", payload={"page": "home", "product_code": None, "duration_ms": -5})
    with EventPublisher(kafka_settings) as publisher:
        with pytest.raises(ContractViolation) as info:
            publisher.publish(bad)
        assert "app_page_view" in str(info.value) and "payload.duration_ms" in str(info.value)
        with pytest.raises(ContractViolation, match="unknown event_type 'page_scroll'"):
            publisher.publish({**bad, "event_type": "page_scroll"})
        infinite = sample_event(
            "coupon_claim", 2, payload={"coupon_id": "C", "campaign_id": None, "value": float("inf")}
        )
        with pytest.raises(ContractViolation, match="coupon_claim violates its contract: NaN or Infinity"):
            publisher.publish(infinite)
        publisher.publish(sample_event("app_page_view", 1))
        assert publisher.published == 1
    messages = _read_all(kafka_settings, f"{kafka_settings.kafka_topic_prefix}.behaviour", 2, timeout_s=3)
    assert [json.loads(m.value)["event_id"] for m in messages] == [sample_event("app_page_view", 1)["event_id"]]


def test_publish_raw_sends_bytes_unchecked(kafka_settings):
    topic = f"{kafka_settings.kafka_topic_prefix}.behaviour"
    publish_raw(kafka_settings, topic, b"\xff\xfe not json", key=b"7")
    publish_raw(kafka_settings, topic, b'{"event_type": "mystery"}')
    messages = _read_all(kafka_settings, topic, 2)
    assert sorted(m.value for m in messages) == [b'{"event_type": "mystery"}', b"\xff\xfe not json"]
    assert {m.key for m in messages} == {b"7", None}
