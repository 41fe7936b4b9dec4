"""The outbox relay against a real Kafka-protocol broker: every event arrives exactly as stored and in order
per customer, none is lost while the broker is down, a relay killed after publishing sends again with the
same event_id, and two relays at once on PostgreSQL and MariaDB publish every row exactly once."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from sqlalchemy import select

from mo.errors import BrokerUnavailable, MoError
from mo.events.relay import RelayStats, _claim, relay_once, relay_producer, require_outbox, run_relay
from mo.oltp.db import make_engine
from mo.oltp.outbox import OutboxEvent, add_event, new_event, outbox_status
from tests.conftest import free_port
from tests.mo.outbox_helpers import migrated_engine, read_topic

pytestmark = pytest.mark.kafka
OUTBOX = OutboxEvent.__table__


@pytest.fixture
def sqlite_engine(tmp_path):
    yield from migrated_engine("sqlite", tmp_path)


def _event(seq: int, customer_id: int) -> dict:
    if seq % 3 == 0:
        payload = {"channel": "sms", "purpose": "marketing", "status": "opt_out" if seq % 2 else "opt_in",
                   "text_version": f"v{seq}", "source": "app"}  # fmt: skip
        return new_event("consent_changed", customer_id=customer_id, payload=payload, source="app")
    payload = {"claim_no": f"CL{customer_id:04d}", "from_status": "submitted", "to_status": "under_review",
               "changed_by": "claims_handler", "reason": f"step {seq}"}  # fmt: skip
    return new_event("claim_status_changed", customer_id=customer_id, payload=payload, source="core")


def _write_events(engine, settings, n: int, customers: int) -> list[dict]:
    """n business events over `customers` customers, one transaction each (as n API writes)."""
    events = [_event(seq, seq % customers + 1) for seq in range(n)]
    for event in events:
        with engine.begin() as conn:
            add_event(conn, event, settings=settings)
    return events


def _stored(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(select(OUTBOX).order_by(OUTBOX.c.id)))


def _business(settings) -> str:
    return f"{settings.kafka_topic_prefix}.business"


def _assert_in_id_order_per_customer(messages, rows) -> None:
    """Within each customer (one key, one partition) the messages follow the outbox's id order."""
    order = {r.event_id: r.id for r in rows}
    seen: dict[bytes, list[int]] = defaultdict(list)
    for message in messages:
        seen[message.key].append(order[json.loads(message.value)["event_id"]])
    for key, ids in seen.items():
        assert ids == sorted(ids), f"customer {key!r} out of order: {ids}"


def _wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_every_event_arrives_exactly_as_stored_in_order_per_customer(sqlite_engine, kafka_settings):
    events = _write_events(sqlite_engine, kafka_settings, 60, customers=4)
    with _Producer(kafka_settings) as producer:
        results = []
        while outbox_status(sqlite_engine).pending:
            results.append(relay_once(sqlite_engine, kafka_settings, 25, producer=producer))
    assert [r.published for r in results] == [25, 25, 10] and not any(r.failed or r.held_back for r in results)
    assert relay_once(sqlite_engine, kafka_settings, 25).claimed == 0  # nothing left; its own producer this time

    rows = _stored(sqlite_engine)
    messages = read_topic(kafka_settings.resolved_kafka_bootstrap, _business(kafka_settings), len(events))
    assert len(messages) == len(events)
    by_id = {json.loads(m.value)["event_id"]: m for m in messages}
    for row in rows:
        message = by_id[row.event_id]
        assert message.value == row.payload.encode("utf-8")  # byte for byte what the API stored
        assert message.key == row.partition_key.encode()
        assert row.published_at is not None and row.attempts == 1 and row.last_error is None
    assert sorted(by_id) == sorted(e["event_id"] for e in events)
    _assert_in_id_order_per_customer(messages, rows)


class _Producer:
    """relay_producer as a context manager."""

    def __init__(self, settings) -> None:
        self.producer = relay_producer(settings)

    def __enter__(self):
        return self.producer

    def __exit__(self, *exc: object) -> None:
        self.producer.close(timeout=5)


def test_broker_down_keeps_events_pending_and_the_relay_running_then_up_loses_none(
    sqlite_engine, settings, monkeypatch, tmp_path, caplog
):
    from mo.config import get_settings
    from mo.events.broker import start_embedded

    port = free_port()
    monkeypatch.setenv("MO_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setenv("MO_KAFKA_TOPIC_PREFIX", "outage")
    down = get_settings()
    events = _write_events(sqlite_engine, down, 30, customers=3)
    with pytest.raises(BrokerUnavailable, match=f"Kafka broker unreachable at 127.0.0.1:{port}"):
        relay_once(sqlite_engine, down, 10)

    caplog.set_level(logging.INFO, logger="mo.events.relay")
    stop, stats = threading.Event(), RelayStats()
    relay = threading.Thread(
        target=run_relay,
        args=(sqlite_engine, down),
        kwargs={"batch_size": 10, "poll_interval_s": 0.05, "max_backoff_s": 0.2, "stop": stop, "stats": stats},
        daemon=True,
    )
    relay.start()
    broker = None
    try:
        _wait_for(lambda: stats.failed_passes >= 5)
        assert relay.is_alive() and stats.in_outage and stats.published == 0
        assert outbox_status(sqlite_engine).pending == len(events)
        outage_lines = [r for r in caplog.records if "retrying with backoff" in r.getMessage()]
        assert len(outage_lines) == 1, [r.getMessage() for r in caplog.records]  # one line per outage, not per pass
        assert f"Kafka broker unreachable at 127.0.0.1:{port}" in outage_lines[0].getMessage()

        broker = start_embedded(port=port, log_dir=tmp_path / "late_broker")
        _wait_for(lambda: outbox_status(sqlite_engine).pending == 0)
        assert relay.is_alive()
        messages = read_topic(broker.bootstrap, _business(down), len(events))
        rows = _stored(sqlite_engine)
        assert sorted(m.value for m in messages) == sorted(r.payload.encode() for r in rows)  # none lost, none twice
        _assert_in_id_order_per_customer(messages, rows)
        assert stats.outages == 1 and not stats.in_outage and stats.published == len(events)
        assert [r.getMessage() for r in caplog.records if "publishing again" in r.getMessage()] != []
    finally:
        stop.set()
        relay.join(timeout=30)
        if broker is not None:
            broker.stop()
    assert not relay.is_alive()


def test_relay_killed_after_publishing_sends_again_with_the_same_event_id(tmp_path, kafka_settings, mo_home):
    source_url = f"sqlite:///{tmp_path / 'killed.db'}"
    engine = make_engine(source_url)
    from mo.oltp.db import migrate

    migrate(engine)
    events = _write_events(engine, kafka_settings, 12, customers=2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MO_")}
    env.update(
        MO_HOME=str(mo_home),
        MO_SOURCE_URL=source_url,
        MO_KAFKA_BOOTSTRAP=kafka_settings.resolved_kafka_bootstrap,
        MO_KAFKA_TOPIC_PREFIX=kafka_settings.kafka_topic_prefix,
        MO_FAULT_INJECT="after_outbox_publish",
    )
    killed = subprocess.run(
        [sys.executable, "-m", "mo", "outbox", "relay", "--once"], env=env, capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == 137, killed.stderr
    assert outbox_status(engine).pending == len(events)  # acknowledged by the broker, never marked

    assert relay_once(engine, kafka_settings, 100).published == len(events)
    rows = _stored(engine)
    messages = read_topic(kafka_settings.resolved_kafka_bootstrap, _business(kafka_settings), 2 * len(events))
    copies: dict[str, list[bytes]] = defaultdict(list)
    for message in messages:
        copies[json.loads(message.value)["event_id"]].append(message.value)
    assert sorted(copies) == sorted(e["event_id"] for e in events)
    for row in rows:
        assert copies[row.event_id] == [row.payload.encode()] * 2  # the same event twice: dropped downstream by id
    assert all(r.attempts == 1 and r.published_at is not None for r in rows)  # the killed pass never wrote
    engine.dispose()


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mariadb",
                marks=pytest.mark.mariadb)])  # fmt: skip
def server_engine(request, tmp_path):
    yield from migrated_engine(request.param, tmp_path)


def test_a_relay_skips_rows_another_holds_and_keeps_each_customer_in_order(server_engine, kafka_settings):
    """Relay A holds the first 10 rows (its transaction open, as while it publishes); relay B publishes the rest,
    except the rows of customers A holds an earlier row of, which wait for A. Then every row once, in order."""
    engine = server_engine
    _write_events(engine, kafka_settings, 40, customers=8)  # ids 1-40; customers 1..8 round robin
    rows = _stored(engine)
    held_customers = {r.partition_key for r in rows[:5]}  # A claims ids 1-5: customers 1-5
    conn_a = engine.connect().execution_options(isolation_level="READ COMMITTED")
    try:
        tx_a = conn_a.begin()
        claimed_a = _claim(conn_a, 5)
        assert [r.id for r in claimed_a] == [r.id for r in rows[:5]]

        result_b = relay_once(engine, kafka_settings, 100)
        free = [r for r in rows[5:] if r.partition_key not in held_customers]
        assert (result_b.published, result_b.held_back, result_b.failed) == (len(free), len(rows) - 5 - len(free), 0)
        assert len(free) == 3 * 5  # customers 6-8: five events each
        tx_a.rollback()  # A dies before marking: its rows are free again
    finally:
        conn_a.close()

    assert relay_once(engine, kafka_settings, 100).published == len(rows) - len(free)
    messages = read_topic(kafka_settings.resolved_kafka_bootstrap, _business(kafka_settings), len(rows))
    assert sorted(json.loads(m.value)["event_id"] for m in messages) == sorted(r.event_id for r in rows)
    _assert_in_id_order_per_customer(messages, _stored(engine))


@pytest.mark.postgres
def test_two_relays_at_once_on_postgres_publish_every_row_once(tmp_path, kafka_settings):
    gen = migrated_engine("postgres", tmp_path)
    engine = next(gen)
    try:
        events = _write_events(engine, kafka_settings, 300, customers=12)
        stop = threading.Event()
        stats = [RelayStats(), RelayStats()]
        relays = [
            threading.Thread(
                target=run_relay,
                args=(engine, kafka_settings),
                kwargs={"batch_size": 7, "poll_interval_s": 0.02, "stop": stop, "stats": s},
                daemon=True,
            )
            for s in stats
        ]
        for relay in relays:
            relay.start()
        _wait_for(lambda: outbox_status(engine).pending == 0)
        stop.set()
        for relay in relays:
            relay.join(timeout=30)
        assert sum(s.published for s in stats) == len(events) and not any(s.failed_passes for s in stats)
        messages = read_topic(kafka_settings.resolved_kafka_bootstrap, _business(kafka_settings), len(events))
        assert sorted(json.loads(m.value)["event_id"] for m in messages) == sorted(e["event_id"] for e in events)
        _assert_in_id_order_per_customer(messages, _stored(engine))
    finally:
        engine.dispose()
        next(gen, None)


def test_a_source_without_the_outbox_is_named(tmp_path, kafka_settings):
    engine = make_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    with pytest.raises(MoError, match=r"no outbox table in the source database at sqlite:///.*: run `mo db migrate`"):
        require_outbox(engine)
    with pytest.raises(MoError, match="batch size must be at least 1"):
        relay_once(engine, kafka_settings, 0)


def test_cli_status_and_relay_once(tmp_path, kafka_settings, mo_home):
    from tests.mo.test_cli import run_mo

    source_url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {
        "MO_SOURCE_URL": source_url,
        "MO_KAFKA_BOOTSTRAP": kafka_settings.resolved_kafka_bootstrap,
        "MO_KAFKA_TOPIC_PREFIX": kafka_settings.kafka_topic_prefix,
    }
    bare = run_mo("outbox", "status", env=env, home=mo_home)
    assert bare.returncode == 1 and bare.stderr.strip().splitlines() == [
        f"error: no outbox table in the source database at {source_url}: run `mo db migrate`"
    ]
    assert run_mo("db", "migrate", env=env, home=mo_home).returncode == 0
    engine = make_engine(source_url)
    _write_events(engine, kafka_settings, 3, customers=1)
    status = run_mo("outbox", "status", env=env, home=mo_home)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["pending"] == 3 and report["lag_seconds"] >= 0 and report["oldest_pending_at"].endswith("Z")
    once = run_mo("outbox", "relay", "--once", env=env, home=mo_home)
    assert once.returncode == 0, once.stderr
    result = json.loads(once.stdout)
    assert (result["published"], result["failed"], result["outbox"]["pending"]) == (3, 0, 0)
    engine.dispose()
