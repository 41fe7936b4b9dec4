"""Whole-DAG runs with dag.test() against the real pieces: a generated SQLite world, Spark + Iceberg,
Great Expectations, and a local Kafka-protocol broker."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from sqlalchemy import text

from mo.airflow_local import run_dag
from mo.progress import Progress

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


def test_build_profiles_dag_builds_marts_segments_and_publishes(settings, spark, world):
    from mo.generator.storage import read_clock
    from mo.serving_store import open_store
    from mo.status import collect_status

    assert run_dag("source_sync")["state"] == "success"
    with world.connect() as conn:
        as_of = read_clock(conn).current_date.isoformat()

    result = run_dag("build_profiles", run_conf={"as_of": as_of, "force": True})

    assert result["state"] == "success", result
    assert all(state == "success" for state in result["tasks"].values()), result["tasks"]
    live = spark.table(f"{settings.catalog_name}.silver.customers").count()
    current = open_store(settings).current_refresh()
    assert current is not None and str(current.as_of_date) == as_of
    assert current.row_counts["customer_profile"] == live
    assert current.row_counts["segments"] >= 6  # the example definitions, empty ones included
    status = collect_status(settings)
    assert status["marts"]["customer_profile"] == live
    assert status["serving"]["refresh"]["refresh_id"] == current.refresh_id
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
