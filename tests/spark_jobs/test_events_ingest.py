"""Event ingest into bronze: exact counts, dead letters with reasons, and no duplicates on rerun."""

from __future__ import annotations

import base64
import json
import socket

import pytest

from mo.events.contracts import topic_kind
from mo.events.producer import EventPublisher, publish_raw
from mo.events.samples import sample_event, sample_stream
from mo.status import broker_report, format_status
from spark_jobs.events_ingest import (
    DEAD_LETTER_TABLE,
    EVENTS_TABLE,
    committed_offsets,
    consumer_group,
    ingest_events,
    ingest_lag,
)

pytestmark = [pytest.mark.spark, pytest.mark.kafka]


@pytest.fixture
def lake(spark, kafka_settings):
    """The shared session with this test's catalog registered."""
    from spark_jobs.session import get_spark

    return get_spark(kafka_settings)


def _publish(settings, events) -> None:
    with EventPublisher(settings) as publisher:
        for event in events:
            publisher.publish(event)


def _rows(spark, settings, table: str, columns: str = "*"):
    name = f"{settings.catalog_name}.{table}"
    spark.sql(f"REFRESH TABLE {name}")
    return spark.sql(f"SELECT {columns} FROM {name}").collect()


def _reset_offsets(settings, to: int = 0) -> None:
    """Rewind the ingest group, as if the offset commit after an Iceberg commit had been lost."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(
        bootstrap_servers=settings.resolved_kafka_bootstrap, group_id=consumer_group(settings), enable_auto_commit=False
    )
    try:
        offsets = {TopicPartition(t, p): OffsetAndMetadata(to, "", -1) for (t, p) in committed_offsets(settings)}
        consumer.commit(offsets)
    finally:
        consumer.close(autocommit=False)


def test_valid_events_land_in_bronze_exactly_once(lake, kafka_settings):
    events = sample_stream(300)
    _publish(kafka_settings, events)
    lag = ingest_lag(kafka_settings)
    behaviour = sum(topic_kind(e["event_type"]) == "behaviour" for e in events)  # the topic is the contract's
    assert (lag["waiting"], lag["group"]) == (300, consumer_group(kafka_settings))
    assert {t: v["waiting"] for t, v in lag["topics"].items()} == {
        f"{kafka_settings.kafka_topic_prefix}.behaviour": behaviour,
        f"{kafka_settings.kafka_topic_prefix}.business": 300 - behaviour,
    }

    report = ingest_events(lake, kafka_settings, batch_size=100, idle_stop_s=1.0)
    assert {k: report[k] for k in ("consumed", "ingested", "dead_lettered", "skipped_duplicates")} == {
        "consumed": 300,
        "ingested": 300,
        "dead_lettered": 0,
        "skipped_duplicates": 0,
    }
    assert report["batches"] == 3

    rows = _rows(
        lake,
        kafka_settings,
        EVENTS_TABLE,
        "event_id, event_type, schema_version, date_format(occurred_at, \"yyyy-MM-dd'T'HH:mm:ss.SSS'Z'\") AS occurred,"
        " customer_id, source, payload, topic, `partition`, `offset`, kafka_cluster_id, batch_id, ingested_at",
    )
    assert len(rows) == 300
    by_id = {e["event_id"]: e for e in events}
    assert {r.event_id for r in rows} == set(by_id)
    for row in rows:
        event = by_id[row.event_id]
        assert (row.event_type, row.schema_version, row.customer_id, row.source) == (
            event["event_type"],
            1,
            event["customer_id"],
            event["source"],
        )
        assert row.occurred == event["occurred_at"]  # stored as the UTC instant it names
        assert json.loads(row.payload) == event["payload"]
        assert row.topic == f"{kafka_settings.kafka_topic_prefix}.{topic_kind(event['event_type'])}"
        assert row.kafka_cluster_id.startswith("mo-")
    assert len({(r.topic, r.partition, r.offset) for r in rows}) == 300
    assert len({r.batch_id for r in rows}) == 3

    # Partitioned by day of occurrence: 300 events a minute apart span one day.
    name = f"{kafka_settings.catalog_name}.{EVENTS_TABLE}"
    assert lake.table(f"{name}.partitions").count() == 1
    assert "days(occurred_at)" in lake.sql(f"SHOW CREATE TABLE {name}").first()[0]

    # Offsets are committed after the lake commit: a rerun reads nothing.
    assert sum(committed_offsets(kafka_settings).values()) == 300
    assert ingest_lag(kafka_settings)["waiting"] == 0
    broker = broker_report(kafka_settings)  # what `mo status` shows
    assert broker["reachable"] and broker["ingest_lag"]["waiting"] == 0
    assert "waiting for ingest 0" in format_status(
        {"source": "s", "catalog": {"name": "c", "warehouse": "w"}, "tables": {}, "broker": broker}
    )
    again = ingest_events(lake, kafka_settings, idle_stop_s=0.5)
    assert (again["consumed"], again["ingested"], again["batches"]) == (0, 0, 0)
    assert len(_rows(lake, kafka_settings, EVENTS_TABLE, "event_id")) == 300


def test_malformed_messages_are_dead_lettered_with_the_reason(lake, kafka_settings):
    prefix = kafka_settings.kafka_topic_prefix
    behaviour, business = f"{prefix}.behaviour", f"{prefix}.business"
    _publish(kafka_settings, sample_stream(20))
    negative = sample_event("app_page_view", 900, payload={"page": "home", "product_code": None, "duration_ms": -5})
    bad = [
        (behaviour, b'{"event_id": "x", ', "invalid JSON: "),
        (behaviour, b"\xff\xfe\x00binary", "invalid JSON: not UTF-8"),
        (
            behaviour,
            json.dumps({**sample_event("form_submit", 901), "event_type": "x"}).encode(),
            "unknown event_type 'x'",
        ),
        (behaviour, json.dumps(negative).encode(), "payload.duration_ms: -5 is less than the minimum of 0"),
        (business, b'{"amount": NaN}', "invalid JSON: NaN is not valid JSON"),
        (business, b"[1, 2, 3]", "not an event: expected a JSON object, got list"),
    ]
    for topic, value, _ in bad:
        publish_raw(kafka_settings, topic, value, key=b"k1")
    _publish(kafka_settings, sample_stream(10, start=20))  # valid events after the bad ones still arrive

    report = ingest_events(lake, kafka_settings, idle_stop_s=1.0)
    assert (report["consumed"], report["ingested"], report["dead_lettered"]) == (36, 30, 6)
    assert len(_rows(lake, kafka_settings, EVENTS_TABLE, "event_id")) == 30

    dead = _rows(lake, kafka_settings, DEAD_LETTER_TABLE)
    assert len(dead) == 6
    by_value = {}
    for row in dead:
        raw = base64.b64decode(row.raw_value) if row.value_encoding == "base64" else row.raw_value.encode()
        by_value[raw] = row
    for topic, value, reason in bad:
        row = by_value[value]
        assert row.error.startswith(reason), row.error
        assert (row.topic, row.key) == (topic, "k1")
        assert row.offset >= 0 and row.dead_lettered_at is not None
    assert by_value[b"\xff\xfe\x00binary"].value_encoding == "base64"


def test_rerun_after_lost_offset_commits_skips_what_the_lake_holds(lake, kafka_settings):
    _publish(kafka_settings, sample_stream(120))
    publish_raw(kafka_settings, f"{kafka_settings.kafka_topic_prefix}.behaviour", b"oops")
    first = ingest_events(lake, kafka_settings, batch_size=50, idle_stop_s=1.0)
    assert (first["ingested"], first["dead_lettered"]) == (120, 1)

    # Crash after both Iceberg commits, before the offset commit: the group's offsets are back at 0. The job
    # seeks past what both tables hold and drops any re-read message its destination table already has.
    _reset_offsets(kafka_settings)
    rerun = ingest_events(lake, kafka_settings, idle_stop_s=1.0)
    assert (rerun["ingested"], rerun["dead_lettered"]) == (0, 0)
    assert rerun["skipped_duplicates"] == rerun["consumed"] <= 121
    assert sum(committed_offsets(kafka_settings).values()) == 121

    # Crash between the events commit and the dead-letter commit: only the dead letter is missing.
    name = f"{kafka_settings.catalog_name}.{DEAD_LETTER_TABLE}"
    lake.sql(f"DELETE FROM {name}")
    _reset_offsets(kafka_settings)
    rerun = ingest_events(lake, kafka_settings, idle_stop_s=1.0)
    # The dead-letter table holds nothing now, so every partition is read again from 0.
    assert (rerun["consumed"], rerun["ingested"], rerun["dead_lettered"], rerun["skipped_duplicates"]) == (
        121,
        0,
        1,
        120,
    )
    assert len(_rows(lake, kafka_settings, EVENTS_TABLE, "event_id")) == 120
    assert [r.raw_value for r in _rows(lake, kafka_settings, DEAD_LETTER_TABLE, "raw_value")] == ["oops"]


def test_max_messages_stops_early_and_the_next_run_continues(lake, kafka_settings):
    _publish(kafka_settings, sample_stream(50))
    first = ingest_events(lake, kafka_settings, max_messages=20, idle_stop_s=1.0)
    assert (first["consumed"], first["ingested"]) == (20, 20)
    assert sum(offset or 0 for offset in committed_offsets(kafka_settings).values()) == 20
    assert ingest_lag(kafka_settings)["waiting"] == 30
    rest = ingest_events(lake, kafka_settings, idle_stop_s=1.0)
    assert (rest["consumed"], rest["ingested"], rest["skipped_duplicates"]) == (30, 30, 0)
    ids = [r.event_id for r in _rows(lake, kafka_settings, EVENTS_TABLE, "event_id")]
    assert sorted(ids) == sorted(e["event_id"] for e in sample_stream(50))


def test_producer_duplicates_are_kept_raw(lake, kafka_settings):
    """Bronze is raw: the same event sent twice is two messages and two rows (silver de-duplicates)."""
    event = sample_event("claim_filed", 7)
    _publish(kafka_settings, [event, event])
    report = ingest_events(lake, kafka_settings, idle_stop_s=1.0)
    assert report["ingested"] == 2
    rows = _rows(lake, kafka_settings, EVENTS_TABLE, "event_id, `offset`")
    assert {r.event_id for r in rows} == {event["event_id"]} and len({r.offset for r in rows}) == 2


def test_no_topics_yet_is_an_empty_run(lake, kafka_settings):
    report = ingest_events(lake, kafka_settings, idle_stop_s=0.5)
    assert (report["consumed"], report["batches"]) == (0, 0)
    assert _rows(lake, kafka_settings, EVENTS_TABLE) == []


def test_a_restarted_in_memory_broker_is_a_new_log(lake, settings, tmp_path, monkeypatch: pytest.MonkeyPatch):
    """The embedded broker forgets everything on restart and offsets begin at 0 again: new events at old
    offsets must still be ingested, not skipped as already held."""
    from mo.config import get_settings
    from mo.events.broker import start_embedded

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MO_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    local = get_settings()
    for life in range(2):
        broker = start_embedded(port=port, log_dir=tmp_path / f"life{life}")
        try:
            _publish(local, sample_stream(15, start=100 * life))
            report = ingest_events(lake, local, idle_stop_s=1.0)
            assert (report["ingested"], report["skipped_duplicates"]) == (15, 0), life
        finally:
            broker.stop()
    assert len(_rows(lake, local, EVENTS_TABLE, "event_id")) == 30
