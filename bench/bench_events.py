"""Events: publish to Kafka and ingest into bronze, against a plain consume of the same messages.

Starts a fresh embedded broker (Tansu, in memory) and a private MO_HOME, publishes
``MO_BENCH_EVENTS`` contract-valid events (default 200,000) through EventPublisher, then measures:
a plain kafka-python consume of every message (the baseline: what reading alone costs), the contract
check alone, and the full ingest (read, check, write bronze.events, commit offsets).
``MO_BENCH_EVENTS_BATCH`` sets the ingest batch size (default 50,000).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from mo.config import Settings
from mo.events.broker import start_embedded
from mo.events.contracts import event_topics
from mo.events.producer import EventPublisher
from mo.events.samples import sample_stream

IDLE_STOP_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _consume_all(settings: Settings, expected: int) -> tuple[float, list[bytes]]:
    """Baseline: read every message by assignment, doing nothing with it."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.resolved_kafka_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    try:
        partitions = [
            TopicPartition(t, p) for t in event_topics(settings) for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        values: list[bytes] = []
        started = time.perf_counter()
        while len(values) < expected:
            for batch in consumer.poll(timeout_ms=500).values():
                values.extend(m.value for m in batch)
        return time.perf_counter() - started, values
    finally:
        consumer.close()


def _row(name: str, n: int, seconds: float, note: str = "") -> str:
    return f"| {name} | {n:,} | {seconds:.1f} | {n / seconds:,.0f} | {note} |"


def run() -> str:
    from spark_jobs.events_ingest import ingest_events, parse_event
    from spark_jobs.session import get_spark

    n = int(os.environ.get("MO_BENCH_EVENTS", "200000"))
    batch_size = int(os.environ.get("MO_BENCH_EVENTS_BATCH", "50000"))
    with tempfile.TemporaryDirectory(prefix="mo-bench-events-") as tmp:
        home = Path(tmp)
        broker = start_embedded(port=_free_port(), log_dir=home / "broker")
        try:
            settings = Settings(home=home, kafka_bootstrap=broker.bootstrap, catalog_name="bench_events")
            events = sample_stream(n)

            started = time.perf_counter()
            with EventPublisher(settings) as publisher:
                for event in events:
                    publisher.publish(event)
            publish_s = time.perf_counter() - started
            del events

            consume_s, values = _consume_all(settings, n)

            started = time.perf_counter()
            valid = sum(parse_event(v)[0] is not None for v in values)
            check_s = time.perf_counter() - started
            assert valid == n, f"{n - valid} sample events failed their contract"
            del values

            started = time.perf_counter()
            spark = get_spark(settings, app_name="bench-events")
            session_s = time.perf_counter() - started
            report = ingest_events(spark, settings, batch_size=batch_size, idle_stop_s=IDLE_STOP_S)
            assert report["ingested"] == n, report
            ingest_s = report["seconds"] - IDLE_STOP_S  # the idle wait that ends the run is not work
            spark.stop()
        finally:
            broker.stop()
    return "\n".join(
        [
            "## Events: publish and ingest into bronze",
            "",
            f"{n:,} contract-valid events over 9 event types, embedded broker (Tansu, memory storage), "
            f"ingest batch {batch_size:,}, Spark local mode ({os.cpu_count()} cores). "
            "Baseline: a plain kafka-python consume of the same messages that does nothing with them.",
            "",
            "| step | events | seconds | events/s | note |",
            "| --- | ---: | ---: | ---: | --- |",
            _row("publish (EventPublisher: contract check, acks=all, idempotent)", n, publish_s),
            _row("baseline: plain kafka-python consume", n, consume_s, "1.0x"),
            _row("contract check alone (JSON parse + JSON Schema)", n, check_s, "CPU only"),
            _row(
                "ingest_events into bronze.events",
                n,
                ingest_s,
                f"{ingest_s / consume_s:.1f}x the baseline time; {report['batches']} Iceberg commits; "
                f"excludes {session_s:.1f}s SparkSession start",
            ),
        ]
    )


def main() -> int:
    print(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
