"""The lake follows an erasure: after the next sync an erased customer's clear PII is in no restricted table
(their customers row and their policies' plates and addresses), even when the row is extracted again;
tokens and masks stay in silver (under legal hold the rows themselves are kept), other customers keep all."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import insert
from sync_world import SourceWorld, count_gate, frame_rows

from mo.oltp.db import make_engine, migrate
from mo.oltp.privacy import ErasureRequest
from spark_jobs.lake import restricted_staging_table, restricted_table, silver_table
from spark_jobs.sync import run_sync

pytestmark = pytest.mark.spark

TABLES = ["organizations", "agents", "customers", "products", "policies"]


@pytest.fixture
def world(settings) -> SourceWorld:
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    yield SourceWorld(engine)
    engine.dispose()


def erase(world: SourceWorld, customer_id: int) -> None:
    """What the serving API's erasure leaves in the source for the lake: a completed request."""
    now = datetime(2026, 12, 6, 10, 0)
    with world.engine.begin() as conn:
        conn.execute(
            insert(ErasureRequest.__table__).values(
                request_no=str(uuid.uuid4()), customer_id=customer_id, basis="customer_request", status="completed",
                erased="[]", kept="[]", requested_by="user:admin", request_id="test", requested_at=now,
                completed_at=now,
            )
        )  # fmt: skip


def assert_gone_from_history_and_files(spark, settings, table: str, ids: set[int]) -> None:
    """No snapshot of the restricted table (time travel) and no data file left on disk holds these ids."""
    from pyspark.sql import functions as F

    target = restricted_table(settings, table)
    for (snapshot,) in spark.sql(f"SELECT snapshot_id FROM {target}.snapshots").collect():
        then = spark.read.option("snapshot-id", snapshot).table(target)
        assert then.where(F.col("id").isin(list(ids))).count() == 0, f"{target} snapshot {snapshot} still has them"
    location = spark.sql(f"DESCRIBE TABLE EXTENDED {target}").where("col_name = 'Location'").first()["data_type"]
    root = Path(location.removeprefix("file:"))
    files = [str(p) for p in root.rglob("*.parquet") if "/data/" in str(p)]
    assert files
    on_disk = spark.read.parquet(*files)
    assert on_disk.where(F.col("id").isin(list(ids))).count() == 0, f"clear values of {ids} left in {target}'s files"


def test_the_next_sync_drops_an_erased_customers_clear_pii_and_keeps_everyone_elses(spark, settings, world):
    world.seed(customers=6)
    run_sync(spark, settings, tables=TABLES, gate=count_gate)
    policies = world.live_rows("policies")
    erased = next(p["customer_id"] for p in policies)
    erased_policies = {p["id"] for p in policies if p["customer_id"] == erased}
    restricted_customers = {r["id"] for r in frame_rows(spark.table(restricted_table(settings, "customers")))}
    assert erased in restricted_customers  # synced in clear before the erasure

    erase(world, erased)
    world.update("customers", erased)  # the row changes again in the core systems: extracted again
    manifest = run_sync(spark, settings, tables=TABLES, gate=count_gate)
    assert manifest["erasure_purged"]["customers"] == 1  # the re-extracted row, merged then purged
    assert manifest["erasure_purged"]["policies"] == len(erased_policies)
    assert_gone_from_history_and_files(spark, settings, "customers", {erased})
    assert_gone_from_history_and_files(spark, settings, "policies", erased_policies)

    customers_pii = {r["id"] for r in frame_rows(spark.table(restricted_table(settings, "customers")))}
    assert customers_pii == restricted_customers - {erased}
    policies_pii = {r["id"] for r in frame_rows(spark.table(restricted_table(settings, "policies")))}
    assert not policies_pii & erased_policies
    assert policies_pii == {p["id"] for p in policies} - erased_policies
    for name in ("customers", "policies"):
        assert spark.table(restricted_staging_table(settings, name)).count() == 0
    # Under legal hold the rows stay in silver, tokenised: nothing there names the customer.
    silver = {r["id"]: r for r in frame_rows(spark.table(silver_table(settings, "customers")))}
    assert erased in silver and "phone" not in silver[erased] and silver[erased]["phone_token"]

    # A later run with nothing to extract for them leaves them out still.
    world.update("customers", erased)
    run_sync(spark, settings, tables=TABLES, gate=count_gate)
    assert erased not in {r["id"] for r in frame_rows(spark.table(restricted_table(settings, "customers")))}
    assert_gone_from_history_and_files(spark, settings, "customers", {erased})
