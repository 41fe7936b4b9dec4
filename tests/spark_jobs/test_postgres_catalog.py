"""The lakehouse on an Iceberg JDBC catalog in the machine's PostgreSQL: configuration only, same code."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.spark, pytest.mark.postgres]


def test_sync_with_the_catalog_in_postgres(spark, settings, postgres_url, monkeypatch):
    from mo.config import get_settings
    from mo.generator.advance import advance_day
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate
    from mo.status import source_live_counts
    from spark_jobs.session import get_spark
    from spark_jobs.sync import layer_counts, run_sync

    database = postgres_url.rsplit("/", 1)[1]
    monkeypatch.setenv("MO_CATALOG_URI", f"jdbc:postgresql://127.0.0.1:5432/{database}")
    monkeypatch.setenv("MO_CATALOG_USER", "postgres")
    pg_settings = get_settings()
    assert pg_settings.catalog_name == settings.catalog_name

    engine = make_engine(pg_settings.resolved_source_url)  # the SQLite source of this test's MO_HOME
    migrate(engine)
    generate_world(engine, customers=150, seed=5)
    session = get_spark(pg_settings)

    run_sync(session, pg_settings)
    advance_day(engine)
    run_sync(session, pg_settings)

    lake = layer_counts(session, pg_settings)
    source = source_live_counts(pg_settings)
    assert {t: lake[t]["silver"] for t in source} == source
    catalog_db = create_engine(postgres_url)
    with catalog_db.connect() as conn:
        registered = conn.execute(
            text("select table_namespace || '.' || table_name from iceberg_tables where catalog_name = :c"),
            {"c": pg_settings.catalog_name},
        ).scalars()
        assert {"silver.customers", "bronze.policies", "ops.watermarks"} <= set(registered)
    catalog_db.dispose()
    engine.dispose()
