"""The embedded SQLite catalog: its tables are made before Spark opens it, so catalog instances never lock
each other out (Iceberg making them itself leaves a read lock that fails other instances' commits)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from mo.config import Settings
from mo.errors import ConfigError
from spark_jobs.session import SQLITE_CATALOG_DDL, prepare_sqlite_catalog, register_catalog


@pytest.mark.spark
def test_two_catalog_instances_on_one_sqlite_file_both_commit(spark, tmp_path):
    names = ("lake_left", "lake_right")  # two instances of one file: what two processes are too
    for name in names:
        register_catalog(spark, Settings(home=tmp_path, catalog_name=name))
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {name}.ns")
        spark.sql(f"CREATE TABLE {name}.ns.t (id bigint) USING iceberg")
    for i in range(2):
        for name in names:
            spark.sql(f"INSERT INTO {name}.ns.t VALUES ({i})")
    for name in names:
        assert sorted(r["id"] for r in spark.table(f"{name}.ns.t").collect()) == [0, 1]


def test_prepare_is_idempotent_and_upgrades_a_catalog_without_the_view_column(tmp_path):
    path = tmp_path / "catalog.db"
    with closing(sqlite3.connect(path)) as conn:  # a catalog as Iceberg made it with schema V0
        for ddl in SQLITE_CATALOG_DDL:
            conn.execute(ddl)
        conn.execute("INSERT INTO iceberg_tables VALUES ('lake', 'silver', 'customers', '/m/1.json', NULL)")
        conn.commit()
    prepare_sqlite_catalog(path)
    prepare_sqlite_catalog(path)
    with closing(sqlite3.connect(path)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(iceberg_tables)")]
        rows = conn.execute("SELECT table_name, metadata_location, iceberg_type FROM iceberg_tables").fetchall()
    assert columns[-1] == "iceberg_type" and columns.count("iceberg_type") == 1
    assert rows == [("customers", "/m/1.json", None)]


def test_a_catalog_file_that_is_not_a_database_is_named(tmp_path):
    path = tmp_path / "catalog.db"
    path.write_text("not a database, " * 100)
    with pytest.raises(
        ConfigError, match=r"embedded Iceberg catalog .*catalog\.db cannot be used: file is not a database"
    ):
        prepare_sqlite_catalog(path)
    assert path.read_text() == "not a database, " * 100  # left as it was
