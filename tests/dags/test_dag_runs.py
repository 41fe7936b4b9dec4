"""Whole-DAG runs with dag.test() against the real pieces: a generated SQLite world, Spark + Iceberg,
Great Expectations, and a local Kafka-protocol broker."""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from mo.airflow_local import run_dag
from mo.progress import Progress, log_path_for

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.slow]


@pytest.fixture
def world(settings, spark):
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate

    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    generate_world(engine, customers=300, seed=11)
    yield engine
    engine.dispose()


def _silver_snapshot(spark, settings, table: str):
    """The snapshot readers of silver see: the table's main ref (audit branches have their own)."""
    rows = spark.sql(
        f"select snapshot_id from {settings.catalog_name}.silver.{table}.refs where name = 'main'"
    ).collect()
    return rows[0][0] if rows else None


def test_source_sync_dag_syncs_and_then_syncs_incrementally(settings, spark, world):
    from mo.generator.advance import advance_day
    from mo.status import collect_status

    first = run_dag("source_sync")
    assert first["state"] == "success", first
    status = collect_status(settings)
    assert all(row["in_sync"] for row in status["tables"].values()), status["tables"]
    assert status["tables"]["customers"]["silver"] == 300

    advance_day(world)
    second = run_dag("source_sync")
    assert second["state"] == "success", second
    status = collect_status(settings)
    assert all(row["in_sync"] for row in status["tables"].values()), status["tables"]


def test_source_sync_dag_stops_at_the_gate_and_publishes_nothing(settings, spark, world, tmp_path):
    assert run_dag("source_sync")["state"] == "success"
    before = _silver_snapshot(spark, settings, "policies")
    with world.begin() as conn:
        conn.execute(
            text("update policies set status = 'bogus', updated_at = :now where id = (select min(id) from policies)"),
            {"now": datetime(2099, 1, 1)},
        )
    terminal = io.StringIO()
    progress = Progress(tmp_path / "logs" / "sync.log", terminal=terminal)

    with progress.capture():
        result = run_dag("source_sync", progress=progress)

    assert result["state"] == "failed"
    assert result["tasks"]["gate"] == "failed"
    assert result["tasks"]["publish"] in ("upstream_failed", "None", "skipped")
    assert _silver_snapshot(spark, settings, "policies") == before
    statuses = {r[0] for r in spark.table(f"{settings.catalog_name}.silver.policies").select("status").collect()}
    assert "bogus" not in statuses
    # the terminal names the failed task and shows the gate's error under it; the tasks after it say so
    shown = terminal.getvalue().splitlines()
    failed_at = next(i for i, line in enumerate(shown) if line.startswith("source_sync.gate ... failed ("))
    assert "policies" in "\n".join(shown[failed_at + 1 :]) and "bogus" in "\n".join(shown[failed_at + 1 :])
    assert "source_sync.publish ... not run (upstream failed)" in shown
    assert "source_sync.maintain ... not run (upstream failed)" in shown


@pytest.mark.kafka
def test_demo_builds_profiles_through_the_three_dags_with_progress_lines_only(settings, kafka_settings, spark, world):
    """The demo's path on a small world: it prints one line per step and per task, then the summary."""
    from mo.demo import run_demo
    from mo.generator.storage import read_clock
    from mo.serving_store import open_store
    from mo.status import collect_status

    terminal = io.StringIO()
    progress = Progress(log_path_for(kafka_settings.home, "demo"), terminal=terminal)

    with progress.capture():
        run_demo(customers=300, seed=11, days=1, progress=progress, airflow_home=Path(os.environ["AIRFLOW_HOME"]))

    with world.connect() as conn:
        as_of = read_clock(conn).current_date.isoformat()
    live = spark.table(f"{kafka_settings.catalog_name}.silver.customers").count()
    current = open_store(kafka_settings).current_refresh()
    assert current is not None and str(current.as_of_date) == as_of
    assert current.row_counts["customer_profile"] == live
    assert current.row_counts["segments"] >= 6  # the example definitions, empty ones included
    status = collect_status(kafka_settings)
    assert status["marts"]["customer_profile"] == live
    assert status["serving"]["refresh"]["refresh_id"] == current.refresh_id

    shown = terminal.getvalue().splitlines()
    for dag_id, task_count in {"source_sync": 5, "events_ingest": 1, "build_profiles": 6}.items():
        lines = [line for line in shown if line.startswith(f"{dag_id}.")]
        assert len(lines) == task_count, shown
        assert all(" ... ok (" in line for line in lines), lines
    assert "profiles and segments are published." in shown[-1]
    assert len(shown) < 70, shown
    assert not [line for line in shown if "WARN" in line or " START " in line or " OK created " in line]
    log = progress.log_path.read_text()
    assert "OK created sql table model marts.customer_profile" in log  # dbt's line per model, in the log only
    assert "==> source_sync.extract" in log and "<== build_profiles.publish ... ok" in log

    # the same day again: not due, nothing rebuilt
    again = run_dag("build_profiles", run_conf={"as_of": as_of})
    assert again["tasks"]["dbt_build"] == "skipped", again


@pytest.mark.kafka
def test_events_ingest_dag_lands_every_event(kafka_settings, spark):
    from mo.events.producer import EventPublisher, publish_raw

    publisher = EventPublisher(kafka_settings)
    for i in range(1, 51):
        publisher.publish(
            {
                "event_id": f"00000000-0000-4000-8000-{i:012d}",
                "event_type": "message_open",
                "schema_version": 1,
                "occurred_at": "2026-01-02T08:00:00.000000Z",
                "customer_id": i,
                "source": "app",
                "payload": {"message_id": f"m{i}", "channel": "app_push"},
            }
        )
    publisher.close()
    publish_raw(kafka_settings, f"{kafka_settings.kafka_topic_prefix}.behaviour", b"{not json", None)

    result = run_dag("events_ingest")

    assert result["state"] == "success", result
    catalog = kafka_settings.catalog_name
    assert spark.table(f"{catalog}.bronze.events").count() == 50
    assert spark.table(f"{catalog}.bronze.events_dead_letter").count() == 1
