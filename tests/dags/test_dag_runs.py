"""Whole-DAG runs with dag.test() against the real pieces on the embedded configuration: a generated SQLite
world, Spark + Iceberg, Great Expectations. build_profiles and events_ingest run in the production-like chain
(test_production_chain.py), which checks what these checked there."""

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
