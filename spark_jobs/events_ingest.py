"""Ingest behaviour and business events from Kafka into the Iceberg bronze layer, exactly once.

Each message is routed by one deterministic check (JSON parse, then the event_type's JSON Schema in
schemas/events/): contract-valid events go to ``bronze.events``, everything else to
``bronze.events_dead_letter`` with the reason, and the run goes on.

Exactly once across crashes, by two rules:

1. Kafka consumer offsets are committed only after the Iceberg commits of the batch. A crash before
   that re-reads the batch.
2. The sink is idempotent on (kafka_cluster_id, topic, partition, offset). At start the job reads, per
   destination table and per partition, the highest offset that table already holds, seeks each
   partition to max(committed offset, lowest next offset over both tables), and drops a re-read
   message if the table it routes to already holds its offset. Iceberg cannot commit two tables
   atomically, so the check is per table: a crash between the events commit and the dead-letter
   commit re-writes the missing dead letters only.

Bronze is raw: an event the producer sent twice (same event_id, two offsets) is kept twice; only our own
re-reads are dropped. De-duplication by event_id belongs to staging: stg_events__events keeps the first
ingested copy, which also absorbs the outbox relay's at-least-once repeats (mo.events.relay).

The cluster id is part of the key because offsets only mean something within one broker's log: the
embedded broker keeps messages in memory and each start is a new cluster id, so a restarted broker's
offset 0 is never mistaken for one already ingested. Assumes one ingest run at a time per consumer
group (the Airflow DAG has max_active_runs=1).

Fault injection, for tests only: ``MO_FAULT_INJECT=after_iceberg_commit`` makes the process exit with
status 137 (os._exit: no cleanup, like a kill) right after the first batch's Iceberg commits and before
its offset commit: the worst moment, when the lake holds the batch and Kafka does not know. Any other
value is refused; leave it unset in every real deployment.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mo.config import Settings
from mo.errors import BrokerUnavailable, ConfigError
from mo.events.broker import probe, require_reachable
from mo.events.contracts import contract_error, event_topics

log = logging.getLogger(__name__)

EVENTS_TABLE = "bronze.events"
DEAD_LETTER_TABLE = "bronze.events_dead_letter"
IDLE_STOP_S = 2.0
FAULT_ENV = "MO_FAULT_INJECT"
FAULT_POINTS = ("after_iceberg_commit",)

EVENTS_COLUMNS = """
    event_id string, event_type string, schema_version int, occurred_at timestamp, customer_id bigint,
    source string, payload string, topic string, `partition` int, `offset` bigint, kafka_cluster_id string,
    batch_id string, ingested_at timestamp
"""
DEAD_LETTER_COLUMNS = """
    topic string, `partition` int, `offset` bigint, kafka_cluster_id string, key string, raw_value string,
    value_encoding string, error string, batch_id string, dead_lettered_at timestamp
"""


def consumer_group(settings: Settings) -> str:
    return f"{settings.kafka_topic_prefix}.events-ingest"


def _table(settings: Settings, name: str) -> str:
    return f"{settings.catalog_name}.{name}"


def ensure_tables(spark, settings: Settings) -> None:
    """Create the bronze namespace and both event tables if missing."""
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.bronze")
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {_table(settings, EVENTS_TABLE)} ({EVENTS_COLUMNS}) "
        "USING iceberg PARTITIONED BY (days(occurred_at)) TBLPROPERTIES ('format-version'='2')"
    )
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {_table(settings, DEAD_LETTER_TABLE)} ({DEAD_LETTER_COLUMNS}) "
        "USING iceberg PARTITIONED BY (days(dead_lettered_at)) TBLPROPERTIES ('format-version'='2')"
    )


# ---- routing: pure functions, no Spark, no Kafka -------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_event(raw: bytes | None) -> tuple[dict | None, str | None]:
    """(event, None) for a contract-valid message, else (None, reason). Deterministic: same bytes, same answer."""
    if raw is None:
        return None, "empty message: the value is null"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid JSON: not UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        # NaN/Infinity would pass numeric minimums (comparisons are False) and are not JSON anyway.
        event = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"
    reason = contract_error(event)
    if reason is not None:
        return None, reason
    return event, None


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def event_row(event: dict, topic: str, partition: int, offset: int, cluster_id: str, batch_id: str, now: datetime):
    return (
        event["event_id"],
        event["event_type"],
        int(event["schema_version"]),
        _utc(event["occurred_at"]),
        int(event["customer_id"]),  # JSON 5.0 is a valid integer in JSON Schema; bronze wants 5
        event["source"],
        json.dumps(event["payload"], ensure_ascii=False, separators=(",", ":")),
        topic,
        partition,
        offset,
        cluster_id,
        batch_id,
        now,
    )


def _text(raw: bytes | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dead_letter_row(message, error: str, cluster_id: str, batch_id: str, now: datetime) -> tuple[Any, ...]:
    raw_value, encoding = _text(message.value)
    key = message.key.decode("utf-8", errors="backslashreplace") if message.key is not None else None
    return (
        message.topic,
        message.partition,
        message.offset,
        cluster_id,
        key,
        raw_value,
        encoding,
        error,
        batch_id,
        now,
    )


# ---- lake bookkeeping ---------------------------------------------------------------------------------


def lake_offsets(
    spark, settings: Settings, table: str, cluster_id: str, topics: Iterable[str], floor: int
) -> dict[tuple[str, int], int]:
    """Highest offset per (topic, partition) that the table holds for this cluster.

    Offsets below ``floor`` (the lowest committed Kafka offset) cannot matter, and filtering on them lets
    Iceberg skip old data files by their column bounds instead of scanning the whole table.
    """
    from pyspark.sql import functions as F

    df = spark.table(_table(settings, table)).where(
        (F.col("kafka_cluster_id") == cluster_id) & F.col("topic").isin(list(topics)) & (F.col("offset") >= floor)
    )
    rows = df.groupBy("topic", "partition").agg(F.max("offset").alias("max_offset")).collect()
    return {(r["topic"], r["partition"]): r["max_offset"] for r in rows}


def _append(spark, settings: Settings, table: str, rows: list[tuple], columns: str) -> None:
    if rows:
        import pandas as pd

        # Through a pandas frame so the hand-off to the JVM goes by Arrow batches instead of pickled rows
        # (several times faster for 50k-event batches); Spark falls back to rows for a type Arrow lacks.
        names = [part.split()[0].strip("`") for part in columns.split(",") if part.strip()]
        frame = pd.DataFrame.from_records(rows, columns=names)
        spark.createDataFrame(frame, schema=columns).writeTo(_table(settings, table)).append()


def _fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        log.warning("fault injection %s: exiting before the offset commit", point)
        logging.shutdown()
        os._exit(137)


# ---- the run ------------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    events: list[tuple] = field(default_factory=list)
    dead: list[tuple] = field(default_factory=list)
    next_offsets: dict[Any, int] = field(default_factory=dict)  # TopicPartition -> offset to commit
    messages: int = 0


@dataclass
class _Progress:
    consumed: int = 0
    ingested: int = 0
    dead_lettered: int = 0
    skipped_duplicates: int = 0
    batches: int = 0


def _consumer(settings: Settings):
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    bootstrap = settings.resolved_kafka_bootstrap
    require_reachable(bootstrap, "cannot ingest events")
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="mo-events-ingest",
            group_id=consumer_group(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            # Explicit assignment does not join the group, but keep the group timeouts short anyway:
            # a group join against the embedded broker waits for the rebalance timeout.
            max_poll_interval_ms=5000,
            session_timeout_ms=5000,
            heartbeat_interval_ms=1000,
            bootstrap_timeout_ms=10_000,
        )
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"Kafka broker unreachable at {bootstrap}: cannot ingest events ({type(exc).__name__})"
        ) from None


def event_partitions(consumer, topics: Iterable[str]) -> list:
    """Every partition the broker has of ``topics`` (a topic not created yet has none)."""
    from kafka import TopicPartition

    return [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]


def committed_offsets(settings: Settings) -> dict[tuple[str, int], int | None]:
    """The ingest consumer group's committed offset per (topic, partition) of the event topics."""
    consumer = _consumer(settings)
    try:
        return {
            (tp.topic, tp.partition): consumer.committed(tp)
            for tp in event_partitions(consumer, event_topics(settings))
        }
    finally:
        consumer.close(autocommit=False)


def log_ends(consumer, partitions: list, timeout_s: float = 10.0) -> dict[Any, int]:
    """Each partition's log end (high watermark), read from fetch responses.

    A ListOffsets(latest) request answers it directly on Apache Kafka, but some Kafka-protocol brokers
    answer with the base offset of the partition's last record batch (the embedded broker does: 1 for
    a partition holding 54 messages sent as batches of 1 and 53). Every broker reports the high
    watermark in a fetch response, so this fetches from that answer, which reads at most the last
    batch, and takes the high watermark the response carries. Leaves ``consumer`` assigned to
    ``partitions``; commits nothing.
    """
    if not partitions:
        return {}
    start = consumer.end_offsets(partitions)
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, start[tp])
    deadline = time.monotonic() + timeout_s
    while True:
        consumer.poll(timeout_ms=200)
        ends = {tp: consumer.highwater(tp) for tp in partitions}
        missing = [f"{tp.topic}[{tp.partition}]" for tp, end in ends.items() if end is None]
        if not missing:
            return ends
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"the broker did not report the log end of {', '.join(missing)} in {timeout_s:g}s")


def ingest_lag(settings: Settings) -> dict[str, Any]:
    """Messages on the event topics that the ingest has not committed yet (its consumer lag), per topic.

    A partition's lag is its log end minus the group's committed offset, or minus the log's start when
    the group has committed nothing there yet (or committed below what the broker still holds).
    Raises BrokerUnavailable when the broker does not answer.
    """
    from kafka.errors import KafkaError

    consumer = _consumer(settings)
    try:
        partitions = event_partitions(consumer, event_topics(settings))
        start = consumer.beginning_offsets(partitions) if partitions else {}
        committed = {tp: consumer.committed(tp) for tp in partitions}
        end = log_ends(consumer, partitions)
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"Kafka broker at {settings.resolved_kafka_bootstrap} did not answer the lag query ({type(exc).__name__})"
        ) from None
    finally:
        consumer.close(autocommit=False)
    topics: dict[str, dict[str, int]] = {}
    for tp in partitions:
        entry = topics.setdefault(tp.topic, {"partitions": 0, "waiting": 0})
        entry["partitions"] += 1
        entry["waiting"] += max(end[tp] - max(committed[tp] or 0, start[tp]), 0)
    return {"group": consumer_group(settings), "waiting": sum(t["waiting"] for t in topics.values()), "topics": topics}


def _cluster_id(settings: Settings) -> str:
    return probe(settings.resolved_kafka_bootstrap)["cluster_id"] or ""


def ingest_events(
    spark,
    settings: Settings,
    max_messages: int | None = None,
    batch_size: int = 50_000,
    idle_stop_s: float = IDLE_STOP_S,
) -> dict[str, Any]:
    """Drain the event topics into bronze until no message arrives for ``idle_stop_s`` (or max_messages).

    Returns {"consumed", "ingested", "dead_lettered", "skipped_duplicates", "batches", "seconds"}.
    ``consumed`` counts every message read this run, including re-reads dropped as already ingested.
    """
    from kafka.structs import OffsetAndMetadata

    if batch_size < 1:
        raise ConfigError("batch_size must be at least 1")
    fault = os.environ.get(FAULT_ENV)
    if fault and fault not in FAULT_POINTS:
        raise ConfigError(f"{FAULT_ENV}={fault!r} is not one of {', '.join(FAULT_POINTS)}")
    started = time.perf_counter()
    progress = _Progress()
    ensure_tables(spark, settings)
    cluster_id = _cluster_id(settings)
    consumer = _consumer(settings)
    try:
        topics = event_topics(settings)
        partitions = event_partitions(consumer, topics)
        if not partitions:
            log.info("no event topics on %s yet: nothing to ingest", settings.resolved_kafka_bootstrap)
            return _report(progress, started)
        consumer.assign(partitions)
        committed = {tp: consumer.committed(tp) for tp in partitions}
        floor = min((c for c in committed.values() if c is not None), default=0)
        if any(c is None for c in committed.values()):
            floor = 0
        for table in (EVENTS_TABLE, DEAD_LETTER_TABLE):
            # Another process (a crashed run, a rerun elsewhere) may have committed since this session cached it.
            spark.sql(f"REFRESH TABLE {_table(settings, table)}")
        held = {
            EVENTS_TABLE: lake_offsets(spark, settings, EVENTS_TABLE, cluster_id, topics, floor),
            DEAD_LETTER_TABLE: lake_offsets(spark, settings, DEAD_LETTER_TABLE, cluster_id, topics, floor),
        }
        for tp in partitions:
            key = (tp.topic, tp.partition)
            lake_next = min(held[t].get(key, -1) + 1 for t in held)
            start = max(committed[tp] or 0, lake_next)
            if start > 0:
                consumer.seek(tp, start)
            else:
                consumer.seek_to_beginning(tp)

        batch = _Batch()
        batch_id = uuid.uuid4().hex
        idle_since = time.monotonic()
        while True:
            room = batch_size - batch.messages
            if max_messages is not None:
                room = min(room, max_messages - progress.consumed)
            records = consumer.poll(timeout_ms=200, max_records=max(room, 1)) if room > 0 else {}
            now = datetime.now(UTC)
            for tp, messages in records.items():
                key = (tp.topic, tp.partition)
                for message in messages:
                    event, error = parse_event(message.value)
                    table = EVENTS_TABLE if event is not None else DEAD_LETTER_TABLE
                    if message.offset <= held[table].get(key, -1):
                        progress.skipped_duplicates += 1
                    elif event is not None:
                        batch.events.append(
                            event_row(event, tp.topic, tp.partition, message.offset, cluster_id, batch_id, now)
                        )
                    else:
                        batch.dead.append(dead_letter_row(message, error or "", cluster_id, batch_id, now))
                    batch.next_offsets[tp] = message.offset + 1
                    batch.messages += 1
                    progress.consumed += 1
            if records:
                idle_since = time.monotonic()
            limit_reached = max_messages is not None and progress.consumed >= max_messages
            idle = time.monotonic() - idle_since >= idle_stop_s
            if batch.messages and (batch.messages >= batch_size or limit_reached or idle):
                _commit_batch(spark, settings, consumer, batch, progress, OffsetAndMetadata)
                batch = _Batch()
                batch_id = uuid.uuid4().hex
            if limit_reached or idle:
                break
    finally:
        with contextlib.suppress(Exception):
            consumer.close(autocommit=False)
    report = _report(progress, started)
    log.info("events ingest: %s", report)
    return report


def _commit_batch(spark, settings: Settings, consumer, batch: _Batch, progress: _Progress, offset_type) -> None:
    from kafka.errors import KafkaError

    _append(spark, settings, EVENTS_TABLE, batch.events, EVENTS_COLUMNS)
    _append(spark, settings, DEAD_LETTER_TABLE, batch.dead, DEAD_LETTER_COLUMNS)
    _fault("after_iceberg_commit")
    try:
        consumer.commit({tp: offset_type(offset, "", -1) for tp, offset in batch.next_offsets.items()})
    except KafkaError as exc:
        # The lake already holds the batch; the next run skips it by offset, so nothing is lost or doubled.
        raise BrokerUnavailable(
            f"events written to bronze but the offset commit to {settings.resolved_kafka_bootstrap} failed "
            f"({type(exc).__name__}); rerun ingest-events"
        ) from None
    progress.ingested += len(batch.events)
    progress.dead_lettered += len(batch.dead)
    progress.batches += 1


def _report(progress: _Progress, started: float) -> dict[str, Any]:
    return {
        "consumed": progress.consumed,
        "ingested": progress.ingested,
        "dead_lettered": progress.dead_lettered,
        "skipped_duplicates": progress.skipped_duplicates,
        "batches": progress.batches,
        "seconds": round(time.perf_counter() - started, 3),
    }
