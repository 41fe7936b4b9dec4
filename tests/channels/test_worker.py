"""Channel workers against the provider sandbox and a real source database: retries on retryable errors only,
permanent errors at once, the dead letter after N attempts, the rate limit, recovery of a message left queued
by a crash (the provider is asked first), and the Kafka loop end to end."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from mo.channels.messages import dead_topic, produce_sends, send_producer
from mo.channels.worker import ChannelWorker, TokenBucket, append_state
from mo.config import get_settings
from mo.errors import ContractViolation
from mo.oltp.campaign_tables import Delivery
from tests.channels.helpers import (
    add_customers,
    configure,
    inject,
    openid,
    point_channels_at,
    running_sandbox,
    sandbox_log,
    send_message,
)
from tests.mo.outbox_helpers import migrated_engine, read_topic

DELIVERIES = Delivery.__table__


@pytest.fixture
def source(tmp_path):  # type: ignore[no-untyped-def]
    for engine in migrated_engine("sqlite", tmp_path):
        add_customers(engine, range(1, 41))
        yield engine


@pytest.fixture
def sandbox(settings, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    with running_sandbox(tmp_path / "sandbox", unfollowed_openids=[openid(13)]) as server:
        point_channels_at(monkeypatch, server.url, MO_CHANNEL_MAX_ATTEMPTS="3")
        yield server


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic, key=None, value=None):  # type: ignore[no-untyped-def]
        self.sent.append((topic, value))
        return self

    def get(self, timeout=None):  # type: ignore[no-untyped-def]
        return None

    def close(self, timeout=None):  # type: ignore[no-untyped-def]
        return None


def _worker(source, **kwargs) -> ChannelWorker:  # type: ignore[no-untyped-def]
    worker = ChannelWorker(get_settings(), source, **kwargs)
    worker._dead_producer = FakeProducer()
    return worker


def _states(engine, message_id: str) -> dict[str, tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(select(DELIVERIES).where(DELIVERIES.c.message_id == message_id)).all()
    return {r.state: (r.provider_message_id, r.detail) for r in rows}


def _send_requests(server, provider: str, message_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r for r in sandbox_log(server, "requests", provider) if r["client_msg_id"] == message_id]


def test_retries_a_5xx_then_sends_once(source, sandbox) -> None:
    message = send_message(1, "sms")
    inject(sandbox, "sms", "503", 2)
    worker = _worker(source)
    assert worker.process(message) == "sent"
    states = _states(source, message["message_id"])
    assert set(states) == {"queued", "sent"}
    received = sandbox_log(sandbox, provider="sms")
    assert [r["client_msg_id"] for r in received] == [message["message_id"]]
    assert states["sent"][0] == received[0]["provider_msg_id"]
    assert [r["status"] for r in _send_requests(sandbox, "sms", message["message_id"])] == [503, 503, 200]
    assert worker.stats.retries == 2


def test_permanent_error_fails_at_once_without_retry(source, sandbox) -> None:
    message = send_message(13, "wechat")  # customer 13 does not follow the Official Account
    worker = _worker(source)
    assert worker.process(message) == "failed"
    states = _states(source, message["message_id"])
    assert set(states) == {"queued", "failed"} and states["failed"][1].startswith("43004")
    assert len(_send_requests(sandbox, "wechat", message["message_id"])) == 1
    assert sandbox_log(sandbox, provider="wechat") == [] and worker.stats.retries == 0


def test_keeps_failing_goes_to_the_dead_letter_with_the_reason(source, sandbox) -> None:
    message = send_message(2, "push")
    inject(sandbox, "push", "500", 5)
    worker = _worker(source)
    assert worker.process(message) == "dead_letter"
    states = _states(source, message["message_id"])
    assert set(states) == {"queued", "dead_letter"}  # never sent, never delivered
    assert states["dead_letter"][1].startswith("3 attempts, last http_500")
    assert sandbox_log(sandbox, provider="push") == []
    (topic, value), = worker._dead_producer.sent  # fmt: skip
    assert topic == dead_topic(get_settings())
    dead = json.loads(value)
    assert dead["message"]["message_id"] == message["message_id"] and "http_500" in dead["reason"]


def test_frequency_limit_is_retried_and_the_message_still_goes_once(source, sandbox, monkeypatch) -> None:
    configure(sandbox, rate_per_s=1)
    for name, value in (("MAX_ATTEMPTS", "10"), ("BACKOFF_S", "0.2"), ("BACKOFF_MAX_S", "1.0")):
        monkeypatch.setenv(f"MO_CHANNEL_{name}", value)
    worker = _worker(source)
    messages = [send_message(cid, "coupon") for cid in (3, 4, 5)]
    assert [worker.process(m) for m in messages] == ["sent"] * 3
    codes = [r["code"] for r in sandbox_log(sandbox, "requests", "coupon")]
    assert "FREQUENCY_LIMITED" in codes  # the sandbox did refuse some, and the worker came back
    assert sorted(r["client_msg_id"] for r in sandbox_log(sandbox, provider="coupon")) == sorted(
        m["message_id"] for m in messages
    )


def test_token_bucket_gives_rate_tokens_a_second() -> None:
    now = [0.0]
    bucket = TokenBucket(5, clock=lambda: now[0])
    assert sum(bucket.tokens >= 1 and bucket.acquire() == 0 for _ in range(5)) == 5
    assert bucket.tokens < 1  # the burst is spent
    now[0] += 0.4  # two tokens later
    assert bucket.acquire() == 0 and bucket.acquire() == 0 and bucket.tokens < 1


def test_a_message_left_queued_by_a_crash_is_asked_for_before_sending_again(source, sandbox) -> None:
    worker = _worker(source)
    delivered = send_message(6, "wechat")
    # The crashed worker had recorded queued and the provider had accepted the message, then it died.
    append_state(source, delivered, "queued", provider="wechat")
    assert worker.adapter("wechat").send(delivered["message_id"], openid(6), delivered["payload"]).status == "sent"
    assert worker.process(delivered) == "recovered"
    assert len(_send_requests(sandbox, "wechat", delivered["message_id"])) == 1  # not sent again
    assert "found at the provider" in _states(source, delivered["message_id"])["sent"][1]
    # queued, but the provider never got it: sent now, once
    lost = send_message(7, "wechat")
    append_state(source, lost, "queued", provider="wechat")
    assert worker.process(lost) == "sent"
    assert [r["client_msg_id"] for r in sandbox_log(sandbox, provider="wechat")].count(lost["message_id"]) == 1
    # a finished message is skipped: the provider hears nothing
    before = len(sandbox_log(sandbox, "requests"))
    assert worker.process(lost) == "skipped" and len(sandbox_log(sandbox, "requests")) == before


def test_no_address_or_erased_customer_fails_without_a_provider_call(source, sandbox) -> None:
    from sqlalchemy import update

    from mo.oltp.models import Customer

    with source.begin() as conn:
        conn.execute(update(Customer.__table__).where(Customer.__table__.c.id == 8).values(app_user_id=None))
    worker = _worker(source)
    message = send_message(8, "push")
    assert worker.process(message) == "failed"
    assert _states(source, message["message_id"])["failed"][1].startswith("no_address")
    assert worker.process(send_message(404, "sms")) == "failed"  # no such customer
    assert sandbox_log(sandbox, "requests") == []


def test_invalid_messages_are_refused_by_the_producer_and_the_worker(source, sandbox) -> None:
    bad = {**send_message(1, "sms"), "payload": {"sign_name": "中安保险"}}
    with pytest.raises(ContractViolation, match="template_code"):
        produce_sends(FakeProducer(), [send_message(2, "sms"), bad], get_settings())
    worker = _worker(source)
    assert worker.handle_raw(json.dumps(bad).encode()) == "invalid"
    assert worker.handle_raw(b"not json") == "invalid"
    assert len(worker._dead_producer.sent) == 2 and sandbox_log(sandbox, "requests") == []


@pytest.mark.kafka
def test_the_worker_consumes_the_sends_topic_and_commits(source, sandbox, kafka_settings) -> None:
    settings = get_settings()
    channels = ["sms", "wechat", "push", "coupon"] * 3
    messages = [send_message(cid, ch) for cid, ch in zip(range(20, 32), channels, strict=True)]
    producer = send_producer(settings)
    try:
        assert produce_sends(producer, messages, settings) == 12
    finally:
        producer.close(timeout=5)
    inject(sandbox, "push", "503", 5)  # 3 push messages x 3 attempts: the first push goes to the dead letter
    stats = ChannelWorker(settings, source).run(once=True)
    assert (stats.sent, stats.dead_letter) == (11, 1), stats
    received = sorted(r["client_msg_id"] for r in sandbox_log(sandbox))
    assert len(received) == 11 and len(set(received)) == 11
    dead = read_topic(settings.resolved_kafka_bootstrap, dead_topic(settings), 1)
    assert len(dead) == 1 and json.loads(dead[0].value)["message"]["channel"] == "push"
    again = ChannelWorker(settings, source).run(once=True)  # offsets committed: nothing to do
    assert (again.sent, again.skipped, again.dead_letter) == (0, 0, 0)
    assert len(sandbox_log(sandbox)) == 11


def test_sends_are_keyed_by_customer(kafka_settings) -> None:
    settings = get_settings()
    messages = [send_message(77, "sms"), send_message(77, "push"), send_message(78, "sms")]
    producer = send_producer(settings)
    try:
        produce_sends(producer, messages, settings)
    finally:
        producer.close(timeout=5)
    got = read_topic(settings.resolved_kafka_bootstrap, f"{settings.kafka_topic_prefix}.sends", 3)
    assert [m.key for m in got if json.loads(m.value)["customer_id"] == 77] == [b"77", b"77"]
    assert len({m.partition for m in got if m.key == b"77"}) == 1
    assert {json.loads(m.value)["message_id"] for m in got} == {m["message_id"] for m in messages}
