"""Lake maintenance compacts merge-on-read silver without changing what readers see."""

from __future__ import annotations

import pytest
from sync_world import SourceWorld, count_gate, expected_silver, frame_rows

from mo.oltp.db import make_engine, migrate
from spark_jobs.lake import ops_table, silver_table
from spark_jobs.maintenance import RETAIN_LAST, maintain_lake
from spark_jobs.sync import extract_to_bronze, merge_to_audit, run_sync

pytestmark = pytest.mark.spark

TABLES = ["organizations", "agents", "customers"]


@pytest.fixture
def world(settings) -> SourceWorld:
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    yield SourceWorld(engine)
    engine.dispose()


def _files(spark, table: str) -> dict[int, int]:
    rows = spark.sql(f"SELECT content, count(*) AS n FROM {table}.files GROUP BY content").collect()
    return {r["content"]: r["n"] for r in rows}


def test_maintenance_applies_deletes_compacts_and_keeps_the_rows(spark, settings, world):
    world.seed(customers=10)
    run_sync(spark, settings, TABLES, gate=count_gate)
    for round_ in range(3):  # each incremental MERGE adds small files and position deletes
        world.update("customers", 1 + round_, risk_rating="R5")
        world.soft_delete("customers", 5 + round_)
        world.insert("customers", 1)
        run_sync(spark, settings, TABLES, gate=count_gate)
    customers = silver_table(settings, "customers")
    before = _files(spark, customers)
    assert before.get(1, 0) > 0, "incremental merges should have written position deletes"
    key = settings.require_pii_key()
    expected = expected_silver(world.contracts["customers"], world.live_rows("customers"), key)
    snapshots_before = spark.sql(f"SELECT count(*) AS n FROM {customers}.snapshots").collect()[0]["n"]

    settings = settings.model_copy(update={"snapshot_retention_hours": 0})
    report = maintain_lake(spark, settings, TABLES, force=True)

    assert report["ran"] is True
    after = _files(spark, customers)
    assert after.get(1, 0) == 0, f"deletes not applied: {after}"
    assert after.get(0, 0) < before.get(0, 0) + before.get(1, 0)
    assert frame_rows(spark.table(customers)) == expected
    # the sync's snapshots plus the two rewrites, expired down to the newest RETAIN_LAST
    snapshots_after = spark.sql(f"SELECT count(*) AS n FROM {customers}.snapshots").collect()[0]["n"]
    assert snapshots_before >= RETAIN_LAST and snapshots_after == RETAIN_LAST
    entry = next(t for t in report["tables"] if t["table"] == customers)
    assert entry["status"] == "maintained" and entry["delete_files_after"] == 0
    assert entry["snapshots_expired"] > 0
    recorded = spark.table(ops_table(settings, "maintenance_runs")).where(f"`table` = '{customers}'").count()
    assert recorded == 1
    # not due again for another interval
    assert maintain_lake(spark, settings, TABLES)["ran"] is False


def test_maintenance_leaves_a_table_with_an_open_audit_branch_alone(spark, settings, world):
    world.seed(customers=6)
    run_sync(spark, settings, TABLES, gate=count_gate)
    world.update("customers", 1, risk_rating="R4")
    manifest = merge_to_audit(spark, settings, extract_to_bronze(spark, settings, TABLES))
    customers = silver_table(settings, "customers")
    main_before = spark.sql(f"SELECT snapshot_id FROM {customers}.refs WHERE name = 'main'").collect()

    report = maintain_lake(spark, settings, TABLES, force=True)

    entry = next(t for t in report["tables"] if t["table"] == customers)
    assert entry["status"] == "skipped" and manifest["audit_branch"] in entry["detail"]
    assert spark.sql(f"SELECT snapshot_id FROM {customers}.refs WHERE name = 'main'").collect() == main_before
