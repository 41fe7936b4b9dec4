"""Crash safety of the event ingest, with real processes dying: no event lost, none written twice.

Each test runs `python -m mo ingest-events` in a subprocess (its own JVM, local[1]) against the test's
MO_HOME, catalog and broker, lets it die (fault injection after the Iceberg commit, or SIGKILL at a
random moment), then reruns and checks the lake holds every published message exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from mo.config import REPO_ROOT
from mo.events.producer import EventPublisher, publish_raw
from mo.events.samples import sample_stream
from spark_jobs.events_ingest import DEAD_LETTER_TABLE, EVENTS_TABLE, committed_offsets, ingest_events

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.slow]

BAD_EVERY = 50  # one malformed message per 50 valid events, so both tables get batches


def _publish_mixed(settings, valid: int) -> tuple[int, int]:
    topic = f"{settings.kafka_topic_prefix}.behaviour"
    bad = 0
    with EventPublisher(settings) as publisher:
        for i, event in enumerate(sample_stream(valid)):
            publisher.publish(event)
            if i % BAD_EVERY == 0:
                publisher.flush()
                publish_raw(settings, topic, f'{{"broken": {i}'.encode(), key=str(i).encode())
                bad += 1
    return valid, bad


def _ingest_process(settings, batch_size: int, fault: str | None = None) -> subprocess.Popen:
    env = {
        **os.environ,
        "MO_HOME": str(settings.home),
        "MO_CATALOG_NAME": settings.catalog_name,
        "MO_KAFKA_BOOTSTRAP": settings.resolved_kafka_bootstrap,
        "MO_KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "MO_SPARK_MASTER": "local[1]",
        "MO_SPARK_DRIVER_MEMORY": "1g",
    }
    env.pop("MO_FAULT_INJECT", None)
    if fault:
        env["MO_FAULT_INJECT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "mo", "ingest-events", "--batch-size", str(batch_size)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its JVM is in the same group: a group kill takes both down
    )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _lake_counts(spark, settings) -> dict[str, tuple[int, int]]:
    """(rows, distinct offsets) per table: equal means no message is held twice."""
    counts = {}
    for table in (EVENTS_TABLE, DEAD_LETTER_TABLE):
        name = f"{settings.catalog_name}.{table}"
        spark.sql(f"REFRESH TABLE {name}")
        row = spark.sql(f"SELECT count(*) AS n, count(DISTINCT topic, `partition`, `offset`) AS d FROM {name}").first()
        counts[table] = (row.n, row.d)
    return counts


@pytest.fixture
def lake(spark, kafka_settings):
    from spark_jobs.session import get_spark

    return get_spark(kafka_settings)


def test_crash_before_the_offset_commit_neither_loses_nor_duplicates(lake, kafka_settings):
    """The worst moment: the lake holds the batch, Kafka does not know. (The crash between the two
    Iceberg commits is covered in-process by test_events_ingest.py.)"""
    valid, bad = _publish_mixed(kafka_settings, 400)

    proc = _ingest_process(kafka_settings, batch_size=150, fault="after_iceberg_commit")
    try:
        _, stderr = proc.communicate(timeout=240)
    finally:
        _kill_group(proc)
    assert proc.returncode == 137, stderr.decode(errors="replace")[-2000:]
    # The crashed run wrote its first batch to the lake but committed no offset.
    assert all(offset is None for offset in committed_offsets(kafka_settings).values())
    written = _lake_counts(lake, kafka_settings)
    assert written[EVENTS_TABLE][0] > 0 and written[DEAD_LETTER_TABLE][0] > 0

    report = ingest_events(lake, kafka_settings, idle_stop_s=1.0)
    assert report["consumed"] == report["ingested"] + report["dead_lettered"] + report["skipped_duplicates"]
    assert report["ingested"] == valid - written[EVENTS_TABLE][0]
    assert report["dead_lettered"] == bad - written[DEAD_LETTER_TABLE][0]
    assert _lake_counts(lake, kafka_settings) == {EVENTS_TABLE: (valid, valid), DEAD_LETTER_TABLE: (bad, bad)}
    assert sum(committed_offsets(kafka_settings).values()) == valid + bad


def test_kill_9_at_a_random_moment_then_rerun_is_exact(lake, kafka_settings):
    seed = int(os.environ.get("MO_TEST_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    valid, bad = _publish_mixed(kafka_settings, 1200)

    proc = _ingest_process(kafka_settings, batch_size=150)
    try:
        # Wait for the first committed batch so the kill lands mid-run, not during JVM start.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if any(committed_offsets(kafka_settings).values()):
                break
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.5))
        assert proc.poll() is None, f"ingest finished before the kill (seed {seed}): {proc.communicate()}"
    finally:
        _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    before = _lake_counts(lake, kafka_settings)
    assert before[EVENTS_TABLE][0] < valid, f"seed {seed}: the killed run had already finished"

    # Rerun in this process (a fresh run: nothing from the killed run's memory can help it; the session is
    # already up, a second subprocess would start another JVM).
    report = ingest_events(lake, kafka_settings, idle_stop_s=1.0)
    assert report["ingested"] + before[EVENTS_TABLE][0] == valid, f"seed {seed}"
    assert report["dead_lettered"] + before[DEAD_LETTER_TABLE][0] == bad, f"seed {seed}"
    assert _lake_counts(lake, kafka_settings) == {EVENTS_TABLE: (valid, valid), DEAD_LETTER_TABLE: (bad, bad)}
    assert sum(committed_offsets(kafka_settings).values()) == valid + bad


def test_fault_injection_rejects_unknown_points(lake, kafka_settings, monkeypatch: pytest.MonkeyPatch):
    from mo.errors import ConfigError

    monkeypatch.setenv("MO_FAULT_INJECT", "sometimes")
    with pytest.raises(ConfigError, match="MO_FAULT_INJECT='sometimes' is not one of"):
        ingest_events(lake, kafka_settings)
