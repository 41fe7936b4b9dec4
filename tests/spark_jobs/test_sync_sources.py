"""MariaDB and PostgreSQL sources: the same sync gives silver equal to the source's live rows, every type intact."""

from __future__ import annotations

import pytest
from sync_world import SourceWorld, count_gate, expected_silver, frame_rows, writes_while_extracting

from mo.config import get_settings
from mo.oltp.db import make_engine, migrate
from spark_jobs.lake import silver_table
from spark_jobs.sync import run_sync


def _sync_full_then_incremental(spark, settings, url: str) -> dict:
    engine = make_engine(url)
    migrate(engine)
    world = SourceWorld(engine)
    world.seed(customers=10)
    key = settings.require_pii_key()

    def assert_equal() -> None:
        for name, contract in world.contracts.items():
            expected = expected_silver(contract, world.live_rows(name), key)
            assert frame_rows(spark.table(silver_table(settings, name))) == expected, name

    first = run_sync(spark, settings, gate=count_gate)
    assert_equal()
    world.update("policies", 2)
    world.update("products", 1)
    world.soft_delete("claims", 1)
    world.insert("customers", 2)
    second = run_sync(spark, settings, gate=count_gate)
    assert_equal()

    # the application writes while the sync reads: a customer of the window changes again, a new one arrives
    fresh = world.insert("customers", 1)[0]
    arrived = []

    def application_writes():
        world.update("customers", fresh)
        arrived.extend(world.insert("customers", 1))

    with writes_while_extracting("customers", application_writes):
        during = run_sync(spark, settings, gate=count_gate)
    assert during["tables"]["customers"]["pending_ids"] == [fresh, *arrived]
    run_sync(spark, settings, gate=count_gate)
    assert_equal()
    engine.dispose()
    return {"first": first, "second": second}


@pytest.mark.spark
@pytest.mark.mariadb
def test_mariadb_source(spark, settings, mariadb_url, monkeypatch):
    monkeypatch.setenv("MO_SOURCE_URL", mariadb_url)
    monkeypatch.setenv("MO_JDBC_PARTITION_ROWS", "4")  # big tables read as parallel id ranges
    settings = get_settings()
    runs = _sync_full_then_incremental(spark, settings, mariadb_url)
    assert runs["first"]["source"].startswith("mysql:127.0.0.1:3306/")
    assert runs["second"]["tables"]["claims"]["rows_bronze"] == 1


@pytest.mark.spark
@pytest.mark.postgres
def test_postgres_source(spark, settings, postgres_url, monkeypatch):
    monkeypatch.setenv("MO_SOURCE_URL", postgres_url)
    monkeypatch.setenv("MO_JDBC_PARTITION_ROWS", "4")
    settings = get_settings()
    runs = _sync_full_then_incremental(spark, settings, postgres_url)
    assert runs["first"]["source"].startswith("postgresql:127.0.0.1:5432/")
    assert runs["second"]["tables"]["customers"]["rows_bronze"] == 2
