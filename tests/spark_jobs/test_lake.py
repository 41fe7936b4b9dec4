"""Layer tables carry the write settings from spark_jobs.lake, also tables created before a setting existed."""

from __future__ import annotations

import pytest

from mo.contracts import load_source_contracts
from spark_jobs.lake import REDACTED, bronze_table, ensure_layer_tables, restricted_table, silver_table
from spark_jobs.session import register_catalog

pytestmark = pytest.mark.spark

TOKEN_METRICS = "write.metadata.metrics.column.phone_token"
LEVEL = "write.parquet.compression-level"


def properties(spark, table: str) -> dict[str, str]:
    return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}


def test_existing_tables_are_switched_to_the_current_write_settings(spark, settings):
    register_catalog(spark, settings)
    contract = load_source_contracts()["customers"]
    ensure_layer_tables(spark, settings, contract)
    tables = [bronze_table(settings, "customers"), silver_table(settings, "customers")]
    tables.append(restricted_table(settings, "customers"))
    for table in tables:
        props = properties(spark, table)
        # Spark hides values of keys naming a token (the files' metrics in test_sync show the setting works)
        assert (props.get(LEVEL), props.get(TOKEN_METRICS)) == ("1", REDACTED), table
        assert "write.metadata.metrics.column.id" not in props, "only token columns lose their bounds"

    for table in tables:  # as a table made before these settings existed
        spark.sql(f"ALTER TABLE {table} UNSET TBLPROPERTIES ('{LEVEL}', '{TOKEN_METRICS}')")
    assert ensure_layer_tables(spark, settings, contract) == []
    for table in tables:
        props = properties(spark, table)
        # Spark hides values of keys naming a token (the files' metrics in test_sync show the setting works)
        assert (props.get(LEVEL), props.get(TOKEN_METRICS)) == ("1", REDACTED), table


def test_an_ops_table_made_before_a_column_existed_gains_it(spark, settings):
    from spark_jobs.lake import SYNC_RUNS_COLUMNS, _create, ensure_namespaces, ops_table
    from spark_jobs.watermarks import read_runs, record_runs

    register_catalog(spark, settings)
    ensure_namespaces(spark, settings)
    runs = ops_table(settings, "sync_runs")
    _create(spark, runs, [c for c in SYNC_RUNS_COLUMNS if c[0] != "pending_ids"], None, {"format-version": "2"})
    record_runs(spark, settings, [{"run_id": "r1", "table": "customers", "status": "published", "pending_ids": [7, 9]}])
    assert read_runs(spark, settings, "r1")[0]["pending_ids"] == [7, 9]
